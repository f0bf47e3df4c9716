#!/usr/bin/env bash
# Border width by validation score. Each width fine-tunes the same trained model (BASE.pt,
# e.g. a width-2 run of train_default_model.sh) for 10 minutes with --init, then thresholds
# are tuned on val.txt; the line printed per width is the tuned val score. Starting every
# width from one model costs a tenth of training each from scratch; it favours BASE's own
# width, so a width that wins anyway wins clearly.
# Usage: bash benchmarks/sweep_border_width.sh BASE.pt [OUTDIR]   (about 12 minutes per width)
set -euo pipefail
D=${DATA:-../shared/data/dsb2018_stage1_train}
BASE=$1
OUT=${2:-runs_border}
mkdir -p "$OUT"
for w in ${WIDTHS:-2 3 4}; do
  unetseg train --images "$D/images" --labels "$D/labels" --val-list "$D/val.txt" \
    --init "$BASE" --border-width "$w" --weighted-loss --balance-styles --lr 5e-4 \
    --time-budget "${MINUTES:-10}" --out "$OUT/bw$w.pt" > "$OUT/bw$w.json" 2> "$OUT/bw$w.log"
  python -c "import json, sys; d = json.load(open(sys.argv[1])); \
print(json.dumps({'border_width': $w, **d['thresholds']['scores']}))" "$OUT/bw$w.json"
done

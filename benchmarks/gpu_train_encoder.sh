#!/usr/bin/env bash
# One device call: train the default-model recipe with a larger EfficientNet-Lite encoder on a
# lent GPU machine, from what benchmarks/pack_for_device.py packed (run that here first, and
# name device_pack in the call's carry). Checkpoints, JSON and logs go to $OUT/<encoder>/;
# score them here afterwards with benchmarks/bench_robustness.py --model.
#
#   ENCODER=efficientnet_lite1 bash benchmarks/gpu_train_encoder.sh
#
# A device command may run 10 minutes: the stages default to 4 + 2.5 minutes (the bundled Lite0
# model had 5 + 3.5 on an H200, in two calls; its validation score had levelled off by then),
# leaving about 3 minutes for start-up, unpacking, validation and threshold tuning.
# DEVICE=cpu with tiny STAGE*_MIN and EPOCH_IMAGES checks the script on a CPU.
set -euo pipefail
ENC=${ENCODER:-efficientnet_lite1}
N=${ENC##*lite}
DEST=${OUT:-runs}/lite$N
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python benchmarks/pack_for_device.py --unpack device_pack/data.tar "$WORK/data"
mkdir -p "$DEST"
# Training writes resume states beside its checkpoints (too large to bring back): work in
# $WORK, then copy what matters.
DATA="$WORK/data" ENCODER="$ENC" ENCODER_WEIGHTS="device_pack/lite${N}_encoder_fp16.pth" \
  DEVICE=${DEVICE:-cuda} WORKERS=${WORKERS:-14} BATCH=${BATCH:-32} LR=${LR:-3e-3} \
  EPOCH_IMAGES=${EPOCH_IMAGES:-8192} STAGE1_MIN=${STAGE1_MIN:-4} STAGE2_MIN=${STAGE2_MIN:-2.5} \
  BUNDLE=0 UNETSEG="python -m napari_unetseg.cli" PYTHONPATH=src \
  bash benchmarks/train_default_model.sh "$WORK/runs" || status=$?
# Files come back at most 16 MiB each: checkpoints in half precision (Lite1 fp32 is 19 MB).
PYTHONPATH=src python - "$WORK/runs" "$DEST" <<'PY'
import sys
from pathlib import Path

from napari_unetseg.core.network.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint

src, dest = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("stage1.pt", "final.pt"):
    if (src / name).exists():
        model, _ = load_checkpoint(src / name)
        info = read_checkpoint_info(src / name)
        save_checkpoint(model, dest / name, provenance=info["provenance"],
                        thresholds=model.thresholds, half=True)
PY
for f in stage1.json final.json stage1.log final.log; do
  if [ -f "$WORK/runs/$f" ]; then cp "$WORK/runs/$f" "$DEST/"; fi
done
ls -la "$DEST"
exit "${status:-0}"

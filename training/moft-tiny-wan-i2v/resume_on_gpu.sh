#!/bin/bash
# Resume moft-tiny-wan-i2v's training on a GPU machine for MINUTES, then pack the run folder for the trip back.
# The moft-tiny-wan recipe's GPU settings (its steps 600-7,207 ran on an H200 at 0.1 s a step, data from 14 worker
# processes); not yet run for this organism. The run starts from this folder's resumption point if one was written
# (--seed-checkpoint, see README.md), else afresh from the shipped moft-tiny-wan.
#   bash training/moft-tiny-wan-i2v/resume_on_gpu.sh MINUTES OUTDIR [WORKERS] [BATCH]
# If the machine lacks moft's dependencies (ftfy included), install wheels first (e.g. pip install --target /tmp/site
# *.whl and PYTHONPATH=/tmp/site). OUTDIR gets run.tgz split into 15 MB parts (cat run.tgz.part-* > run.tgz;
# tar xzf run.tgz), then on any machine:
#   python scripts/model_quality.py --model EXPORT --samples 24 --skip-decoding --text-seeds 0 --guidance-scale 4
# on an export (python scripts/train_shipped_model.py --organism wan-i2v --run run --export EXPORT --threads 1).
set -euo pipefail
MINUTES=${1:?minutes}; OUT=${2:?output folder}; WORKERS=${3:-14}; BATCH=${4:-64}
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
RUN=$(mktemp -d)/run; mkdir -p "$RUN" "$OUT" && cp -r training/moft-tiny-wan-i2v/. "$RUN"/
python3 scripts/train_shipped_model.py --organism wan-i2v --run "$RUN" --batch "$BATCH" --text-encoder frozen \
  --object-weight 10 --mix object=0.6,reverse=0.05,still=0.1,two_objects=0.1,pan=0.15 --describe 0.9 \
  --lr 3e-4 --lr-late 1.5e-4 --late-step 3000 --threads 2 --sample-every 100000000 --workers "$WORKERS" \
  --steps 100000000 --ckpt-every 500 --max-minutes "$MINUTES" 2>&1 | tee "$OUT/train.log" \
  | awk 'NR % 40 == 1 || !/"stage": "transformer"/'
tar czf "$RUN.tgz" -C "$(dirname "$RUN")" run && split -b 15M "$RUN.tgz" "$OUT/run.tgz.part-"

#!/bin/bash
# Resume moft-tiny-wan's training on a GPU machine for MINUTES, then pack the run folder for the trip back.
# What steps 600-7,207 ran (an H200 lent for 15 minutes; 0.1 s a step, data made by 14 worker processes).
#   bash training/moft-tiny-wan/resume_on_gpu.sh MINUTES OUTDIR [WORKERS] [BATCH]
# If the machine lacks moft's dependencies, install wheels first (e.g. pip install --target /tmp/site *.whl and
# PYTHONPATH=/tmp/site). OUTDIR gets run.tgz split into 15 MB parts (cat run.tgz.part-* > run.tgz; tar xzf run.tgz),
# then on any machine: python scripts/ship_model.py --organism wan --run run --out src/moft/models/shipped/moft-tiny-wan
set -euo pipefail
MINUTES=${1:?minutes}; OUT=${2:?output folder}; WORKERS=${3:-14}; BATCH=${4:-64}
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
RUN=$(mktemp -d)/run; mkdir -p "$RUN" "$OUT" && cp -r training/moft-tiny-wan/. "$RUN"/
python3 scripts/train_shipped_model.py --organism wan --run "$RUN" --vae-steps 2500 --vae-schedule cosine \
  --vae-batch 36 --batch "$BATCH" --text-encoder frozen --object-weight 10 \
  --mix object=0.6,reverse=0.05,still=0.1,two_objects=0.1,pan=0.15 --describe 0.9 --threads 2 \
  --sample-every 100000000 --workers "$WORKERS" --steps 100000000 --ckpt-every 500 --late-step 7000 --lr-late 3e-4 \
  --max-minutes "$MINUTES" 2>&1 | tee "$OUT/train.log" | awk 'NR % 40 == 1 || !/"stage": "transformer"/'
tar czf "$RUN.tgz" -C "$(dirname "$RUN")" run && split -b 15M "$RUN.tgz" "$OUT/run.tgz.part-"

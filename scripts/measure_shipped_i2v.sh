#!/usr/bin/env bash
# Ship moft-tiny-wan-i2v from a training run and re-measure every figure docs/image-to-video.md reports on it, in the
# order they depend on each other: the weights and channels, the control default (re-chosen on the tuning suite),
# then the held-out goal table, the bars, the wall, the README's GIF, the point-drag table and the locate map.
# About 2 hours on one CPU thread (tuning 22 min, goals 10, bars 40, wall 5, point drag 40, locate 5).
#
# Usage:
#   bash scripts/measure_shipped_i2v.sh RUN       # RUN: a train_shipped_model.py --organism wan-i2v run folder
#
# Every suite's work folder (REPORT.parts) is removed first: its rows were made on the weights being replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: bash scripts/measure_shipped_i2v.sh RUN}
model=moft-tiny-wan-i2v
folder=src/moft/models/shipped/$model
results=docs/results/$model
export OMP_NUM_THREADS=1

python scripts/ship_model.py --organism wan-i2v --run "$run" --out "$folder"   # EMA weights, channels; no guidance
rm -rf "$results"/*.parts
moft evaluate benchmarks/tune_i2v_start.json --model "$model" --threads 1 --out "$results/tune_i2v_start.json"
python scripts/ship_model.py --out "$folder" --guidance-from "$results/tune_i2v_start.json"
moft evaluate benchmarks/goals_i2v.json --model "$model" --threads 1 --out "$results/goals_i2v.json"
python scripts/model_quality.py --model "$model" --samples 64 --steps 25 --guidance-scale 4 --per-direction 512 \
    --text-seeds 0 --threads 1 --out "$results/model_quality.json"
python scripts/i2v_wall.py --repeats 3 --out "$results/i2v_wall.json"
python scripts/make_i2v_demo.py --out docs/demo-i2v.gif
python scripts/point_drag.py --model "$model" --out "$results/point_drag" --minutes 120
moft locate --model "$model" --clips 4 --out "docs/results/locate_$model.json" >/dev/null

#!/usr/bin/env bash
# Re-measure every committed figure on the shipped model, in the order the figures depend on each
# other, and copy the tables into the README. 37 minutes on two CPU cores (moft-tiny, step 5,800).
#
# Usage:
#   python scripts/ship_model.py --run RUN      # first, when the shipped weights change
#   bash scripts/measure_shipped.sh [SHARDS]    # SHARDS parallel processes per suite (default 2)
#
# The control tuning suite runs first: its best setting becomes the model's guidance and target default (moft.json),
# which every other suite then uses. Suites resume from their docs/results/NAME.parts work folders.
set -euo pipefail
cd "$(dirname "$0")/.."
shards=${1:-2}
results=docs/results

evaluate() {  # one suite in $shards processes, then collect their rows into the report
    local suite=$1 pids=()
    for ((k = 0; k < shards; k++)); do
        moft evaluate "benchmarks/$suite.json" --out "$results/$suite.json" --shard "$k/$shards" >/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done  # a failed shard stops the script (set -e)
    moft evaluate "benchmarks/$suite.json" --out "$results/$suite.json"
}

evaluate tune_levers
python scripts/ship_model.py --guidance-from "$results/tune_levers.json"
for suite in control_goals control_two_objects table1_synthesis table1_reference camera_pan two_objects table4_channels ablations prompt_no_motion; do
    evaluate "$suite"
done
python scripts/model_quality.py --out "$results/model_quality.json" --figure "$results/pca_directions.png"
python scripts/channel_ranking.py --out "$results/channel_ranking.json"
moft locate --out "$results/locate_moft-tiny.json" >/dev/null
python scripts/target_specificity.py --out "$results/target_specificity.json"
python scripts/channel_curves.py --out "$results/channel_curves.png"
python scripts/make_demo.py --out docs/demo.gif
python scripts/benchmark.py --models moft-tiny --out "$results/benchmark.json"
python scripts/control_goals.py
python scripts/results_tables.py

"""Issue 26's held-out subset against the goal table's default row on the same requests.

Usage:
    moft evaluate benchmarks/control_goals_keep_wan.json --model moft-tiny-wan --threads 1 \\
        --out docs/results/moft-tiny-wan/control_goals_keep.json
    python scripts/keep_goals.py     # writes docs/results/moft-tiny-wan/control_goals_keep_compare.md

Reads the subset report and ``docs/results/moft-tiny-wan/control_goals.json`` (the full goal suite: the
same prompts, seed and noise), keeps the latter's rows for the subset's requests, and tabulates each
setting's mean direction success, median displacement share, mean trajectory error, SSIM outside, split
and glitch rates and guided-loop seconds per video.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "moft-tiny-wan"
DEFAULT = "new default: drag, cosine distance, adam 0.15, 4 iterations"
FIGURES = (("direction success", "direction_success", statistics.mean),
           ("share (median)", "displacement_share", statistics.median),
           ("trajectory error", "trajectory_error", statistics.mean), ("SSIM outside", "ssim_outside", statistics.mean),
           ("split rate", "split", statistics.mean), ("glitch rate", "glitch", statistics.mean),
           ("s / video", "seconds", statistics.mean))


def main():
    subset = json.loads((RESULTS / "control_goals_keep.json").read_text())
    full = json.loads((RESULTS / "control_goals.json").read_text())
    wanted = {(r["prompt"], r["seed"], r["request"]) for r in subset["rows"]}
    rows = [r for r in full["rows"] if (r["prompt"], r["seed"], r["request"]) in wanted
            and r["setting"] in ("unguided", DEFAULT)] + [r for r in subset["rows"] if r["setting"] != "unguided"]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    lines = ["| setting | requests | " + " | ".join(f[0] for f in FIGURES) + " |", "|---|---|" + "---|" * len(FIGURES)]
    for s in settings:
        mine = [r for r in rows if r["setting"] == s and r.get("status") == "ok"]
        cells = []
        for _, key, how in FIGURES:
            vals = [float(r[key]) for r in mine if r.get(key) is not None]
            cells.append(f"{how(vals):.3f}" if vals else "–")
        lines.append(f"| {s} | {len(mine)} | " + " | ".join(cells) + " |")
    text = (f"## Keep levers on the held-out goal requests (moft-tiny-wan; {len(wanted)} object requests)\n\n"
            + "\n".join(lines) + "\n\nThe unguided and default rows are `control_goals.json`'s (the full goal suite's run); "
            "the others `control_goals_keep.json`'s, on the same prompts, seed and noise.\n")
    (RESULTS / "control_goals_keep_compare.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

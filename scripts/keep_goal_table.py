"""Issue 26's goal table ("control that keeps the rest") from the measured reports, per organism.

Usage:
    M=moft-tiny-wan R=docs/results/moft-tiny-wan      # or M=moft-tiny R=docs/results
    for s in goals_keep two_objects_keep zoom_keep; do
        moft evaluate benchmarks/$s.json --model $M --threads 1 --out $R/$s.json
    done
    python scripts/benchmark.py --models $M --out $R/benchmark     # walls of the model's moft.json defaults
    python scripts/keep_goal_table.py --model $M                   # writes $R/keep_goal_table.{md,json}

Columns: ``unguided`` and the previous default (the last row of ``control_goals.json``,
``control_two_objects.json`` and ``zoom.json``, run on the same held-out prompts, seed and noise as the
new suites' first seeds), then each row of ``goals_keep.json`` (``benchmarks/goals_keep.json``: the
48 requests of ``benchmarks/control_goals.json``), with ``two_objects_keep.json`` and ``zoom_keep.json``
(more held-out seeds than the old suites: 32 and 48 requests). Object requests give direction, share,
trajectory error, SSIM outside, split and glitch rates; pan requests the camera pan share; the benchmark
report the walls of whatever the model's ``moft.json`` holds when it ran (its row is named in the note).
A figure no report has is "–", never a guess.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_OF = {"moft-tiny": ROOT / "docs" / "results", "moft-tiny-wan": ROOT / "docs" / "results" / "moft-tiny-wan"}
OBJECT, PAN = "object", "pan"
# (label, goal text, test, how) - how(rows of one setting) -> value or None
GOALS = (
    ("direction success (objects and pans)", "≥ 0.95", lambda v: v >= 0.95, ("direction_success", statistics.mean, None)),
    ("share of the requested displacement (median)", "≥ 0.8", lambda v: v >= 0.8,
     ("displacement_share", statistics.median, None)),
    ("trajectory error (fraction of the frame)", "≤ 0.05", lambda v: v <= 0.05, ("trajectory_error", statistics.mean, None)),
    ("SSIM outside the region (objects)", "≥ 0.95", lambda v: v >= 0.95, ("ssim_outside", statistics.mean, OBJECT)),
    ("split rate (a copy instead of a move; objects)", "≤ 5%", lambda v: v <= 0.05, ("split", statistics.mean, OBJECT)),
    ("glitch rate (objects)", "≤ 5%", lambda v: v <= 0.05, ("glitch", statistics.mean, OBJECT)),
    ("camera pan: share of the requested displacement (median)", "≥ 0.8", lambda v: v >= 0.8,
     ("displacement_share", statistics.median, PAN)),
)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _figure(rows: list[dict], key: str, how, kind: str | None) -> float | None:
    vals = [float(r[key]) for r in rows if r.get("status") == "ok" and r.get(key) is not None
            and (kind is None or r["request"].startswith(kind))]
    return how(vals) if vals else None


def _both_right(report: dict | None, setting: str) -> tuple[int, int] | None:
    rows = [r for r in (report or {}).get("rows", []) if r["setting"] == setting and r.get("status") == "ok"]
    return (sum(r.get("all_success") == 1.0 for r in rows), len(rows)) if rows else None


def _zoom(report: dict | None, setting: str) -> tuple[float, int] | None:
    rows = [r for r in (report or {}).get("rows", []) if r["setting"] == setting and r.get("status") == "ok"
            and r.get("zoom_success_lk") is not None]
    return (statistics.mean(float(r["zoom_success_lk"]) for r in rows), len(rows)) if rows else None


def build(model: str) -> tuple[str, dict]:
    res = RESULTS_OF[model]
    old, new = _load(res / "control_goals.json"), _load(res / "goals_keep.json")
    two_old, two_new = _load(res / "control_two_objects.json"), _load(res / "two_objects_keep.json")
    zoom_old, zoom_new = _load(res / "zoom.json"), _load(res / "zoom_keep.json")
    bench = _load(res / "benchmark.json")
    old_default = old["table"][-1]["setting"]
    # column -> (rows of the goal suite, two-objects report and setting, zoom report and setting)
    cols = {"unguided": (old, "unguided", two_old, "unguided", zoom_old, "unguided"),
            f"previous default ({old_default})": (old, old_default, two_old, two_old["table"][-1]["setting"],
                                                   zoom_old, zoom_old["table"][-1]["setting"])}
    for t in (new or {}).get("table", []):
        if t["setting"] != "unguided":
            cols[t["setting"]] = (new, t["setting"], two_new, t["setting"], zoom_new, t["setting"])
    out = {"model": model, "columns": list(cols), "figures": {}}
    lines = []
    for label, goal, test, (key, how, kind) in GOALS:
        cells = []
        for name, (rep, setting, *_rest) in cols.items():
            v = _figure([r for r in rep["rows"] if r["setting"] == setting], key, how, kind)
            out["figures"].setdefault(label, {})[name] = v
            cells.append("–" if v is None else f"{v:.3f}" + ("" if name == "unguided" else (" ✓" if test(v) else " ✗")))
        lines.append(f"| {label} | {goal} | " + " | ".join(cells) + " |")
    cells = []
    for name, (_, _, rep, setting, *_rest) in cols.items():
        k = _both_right(rep, setting)
        out["figures"].setdefault("two objects both right", {})[name] = k
        cells.append("–" if k is None else f"{k[0]} / {k[1]}" + ("" if name == "unguided" else
                                                                  (" ✓" if k[0] >= 0.8 * k[1] else " ✗")))
    lines.append("| two objects, opposite directions, both right | ≥ 0.8 | " + " | ".join(cells) + " |")
    cells = []
    for name, (*_r, rep, setting) in cols.items():
        z = _zoom(rep, setting)
        out["figures"].setdefault("zoom success", {})[name] = z
        cells.append("–" if z is None else f"{z[0]:.2f} ({z[1]})" + ("" if name == "unguided" else
                                                                     (" ✓" if z[0] >= 0.9 else " ✗")))
    lines.append("| zoom success (requests) | ≥ 0.9 | " + " | ".join(cells) + " |")
    bench_note, bench_lines = "no benchmark report", []
    if bench:
        case = {r["case"]: r for r in bench["rows"] if r["model"] == model}
        figs = (("`moft control` wall over unguided", "moft control (shipped defaults)", "time_vs_unguided", 2.0),
                ("guided sampling wall over unguided", "guided (shipped settings)", "time_vs_unguided", 1.5),
                ("peak memory over unguided", "guided (shipped settings)", "rss_vs_unguided", 1.15))
        bench_lines = ["", "| cost of the model's moft.json defaults | goal | measured |", "|---|---|---|"]
        for label, c, key, limit in figs:
            v = case.get(c, {}).get(key)
            out["figures"][label] = v
            bench_lines.append(f"| {label} | ≤ {limit}x | "
                               + ("–" if v is None else f"{v:.3f}x" + (" ✓" if v <= limit else " ✗")) + " |")
        out["benchmark_defaults"] = bench.get("defaults")
        bench_note = f"`scripts/benchmark.py` ({bench.get('device')}, {bench.get('threads')} thread(s))"
    head = ("| figure | goal | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols) + "\n")
    text = (f"## Control that keeps the rest (issue 26): {model}\n\n" + head + "\n".join(lines + bench_lines) + "\n\n"
            f"Written by `scripts/keep_goal_table.py` from `control_goals.json`, `goals_keep.json`, "
            f"`control_two_objects.json`, `two_objects_keep.json`, `zoom.json`, `zoom_keep.json` and {bench_note}. "
            "Direction, share and trajectory error over the 24 object and 24 pan requests; SSIM, split and glitch over "
            "the object requests; the walls are one row for the defaults the model folder held when the benchmark ran.\n")
    return text, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="moft-tiny-wan", choices=sorted(RESULTS_OF))
    args = ap.parse_args()
    text, data = build(args.model)
    res = RESULTS_OF[args.model]
    (res / "keep_goal_table.md").write_text(text)
    (res / "keep_goal_table.json").write_text(json.dumps(data, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()

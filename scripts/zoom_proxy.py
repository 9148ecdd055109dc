"""Can the zoom measure see a zoom on the shipped model's videos? Score the drag proxies.

For every (prompt, seed, request) of a zoom suite (default ``benchmarks/zoom.json``) this makes the
unguided source video, renders its drag proxy (``moft.method.drag.drag_video``: frame 0 scaled by the
requested zoom, what a drag target asks guidance for) and scores the proxy with
``moft.eval.scoring.score_trajectory`` against the same request. A proxy that scores well bounds what
guidance could reach on this content and size; a low guided ``zoom_success_lk`` next to a high
proxy one is the guidance's failure, not the measure's.

Usage:
    python scripts/zoom_proxy.py --out docs/results/zoom_proxy.json   # + .md beside it
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from moft.method.drag import drag_video
    from moft.eval.scoring import score_trajectory, strict
    from moft.eval.suite import check_suite, load_suite
    from moft.models.loading import load_pipeline
    from moft.method.sampler import sample
    from moft.io.jsonio import strict_json
    from moft.io.outputs import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=ROOT / "benchmarks" / "zoom.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    suite = load_suite(args.suite)
    pipe = load_pipeline()
    plans = check_suite(suite, 8, 32, 32, (16, 16))
    start, rows = time.time(), []
    for prompt in suite["prompts"]:
        for seed in suite["seeds"]:
            src = sample(pipe, prompt, seed=seed, steps=suite["steps"], guidance_scale=suite["guidance_scale"]).frames
            for i, req in enumerate(suite["requests"]):
                traj = plans[i]["trajectory"]
                proxy = (drag_video(src, traj) * 255).round().astype(np.uint8)
                scores, reasons = score_trajectory(proxy, src, traj)
                rows.append({"prompt": prompt, "seed": seed, "request": req["name"], **strict(scores, reasons)})
    table = []
    for name in [r["name"] for r in suite["requests"]]:
        rs = [r for r in rows if r["request"] == name]
        achieved = [r["zoom_achieved_lk"] for r in rs if r.get("zoom_achieved_lk") is not None]
        table.append({"request": name, "n": len(rs), "zoom_success_lk": float(np.mean([r["zoom_success_lk"] for r in rs])),
                      "zoom_achieved_lk": float(np.median(achieved)) if achieved else None,
                      "glitch_rate": float(np.mean([r["glitch"] for r in rs])) if all(r.get("glitch") is not None for r in rs) else None})
    report = {"suite": str(args.suite.relative_to(ROOT)) if args.suite.is_relative_to(ROOT) else str(args.suite),
              "seconds": time.time() - start, "table": table, "rows": rows}
    atomic_write_text(args.out, strict_json(report))
    md = ["## Zoom measure on the drag proxies (what a drag target asks for)", "",
          "| request | proxies | zoom success (LK) | zoom achieved (LK, median) | glitch rate |", "|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    md += [f"| {t['request']} | {t['n']} | {fmt(t['zoom_success_lk'])} | {fmt(t['zoom_achieved_lk'])} | {fmt(t['glitch_rate'])} |"
           for t in table]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""Compare motion-channel rankings by how well the kept channels decode motion direction.

For each ranking (``pca``: the paper's |PC1 loading|; ``separation``: |d'| between opposite pans) and
each kept fraction, fit the channels on synthetic pans (DDIM inversion, as shipped) and measure the
8-direction decoding accuracy from those channels' frame-0 MOFT on held-out labelled videos (the
same protocol as the third bar of scripts/model_quality.py).

Usage:
    python scripts/channel_ranking.py --out docs/results/channel_ranking.json   # + .md beside it
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def markdown(report: dict) -> str:
    lines = [f"8-direction decoding accuracy (5-fold logistic regression, {report['videos']} held-out videos) from "
             f"the kept channels' frame-0 MOFT on {report['model']}; all {report['num_channels']} CR channels: "
             f"{100 * report['accuracy_all_channels']:.0f}%, raw features: {100 * report['accuracy_raw']:.0f}%.", "",
             "| ranking | kept per axis | channels (union) | accuracy |", "|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['rank']} | {100 * r['fraction']:g}% | {r['channels']} | {100 * r['accuracy']:.0f}% |")
    return "\n".join(lines) + "\n"


def main():
    import model_quality as mq

    from moft.method.channels import fit_channels
    from moft.models.loading import load_pipeline
    from moft.io.jsonio import write_report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--fractions", default="0.04,0.1")
    ap.add_argument("--per-direction", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    t0 = time.time()
    rows, base = [], None
    for rank in ("pca", "separation"):
        for fraction in (float(f) for f in args.fractions.split(",")):
            ch = fit_channels(pipe, method="inversion", scenes=args.scenes, rank=rank, fraction=fraction)
            mq.default_channels = lambda model, ch=ch: ch  # decode from these channels
            res = mq.moft_decoding(pipe, args.per_direction, args.seed, 200, 25, None, args.model)
            base = res
            rows.append({"rank": rank, "fraction": fraction, "channels": len(ch.indices),
                         "horizontal": ch.horizontal.tolist(), "vertical": ch.vertical.tolist(),
                         "accuracy": res["accuracy_moft_motion_channels"]})
            print(json.dumps(rows[-1]), flush=True)
    report = {"model": args.model or "moft-tiny", "videos": base["videos"], "num_channels": ch.num_channels,
              "accuracy_all_channels": base["accuracy_moft_all_channels"], "accuracy_raw": base["accuracy_raw"],
              "rows": rows, "seconds": time.time() - t0}
    print(markdown(report))
    if args.out:
        write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()

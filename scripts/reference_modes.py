"""Which reference MOFT makes the better target: inversion to the guided timestep, or one forward of
the video noised to it (how FastVMT and FlowMotion take reference features on flow models)?

Usage:
    python scripts/reference_modes.py                          # the shipped model (moft-tiny)
    python scripts/reference_modes.py --model moft-tiny-wan    # any model with shipped channels

For held-out whole-frame pans (scenes of a seed the channels were not fitted on), each mode's
reference target curves are decoded back into the pan's displacement through the channels' fitted
response (least squares per frame, on the latent time grid) and compared with the true one:
correlation along the pan's axis, and whether the decoded motion has the pan's sign. The better
mode decodes the motion it was given more faithfully. Prints a table and writes JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import moft
from moft.method.channels import pan_videos
from moft.method.targets import baseline_curve
from moft.models.pipeline import default_video_size, latent_time_grid


def decode(curves: torch.Tensor, channels, baseline: torch.Tensor) -> np.ndarray:
    """Displacement ``(F', 2)`` whose response best explains the curves ``(F', d)``."""
    response = channels.response[channels.indices]  # (d, 2)
    x = torch.linalg.lstsq(response, (curves - baseline).T).solution.T  # (F', 2)
    return (x - x.mean(0)).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--scenes", type=int, default=2, help="held-out scenes per axis (two pans each)")
    ap.add_argument("--speed", type=float, default=0.04)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = moft.load_pipeline(args.model)
    channels = moft.default_channels(args.model)
    if channels is None:
        raise SystemExit(f"{args.model or 'moft-tiny'} ships no motion channels")
    f, h, w = default_video_size(pipe)
    grid = latent_time_grid(pipe, f)
    base = baseline_curve(channels, len(grid))[:, channels.indices]  # (F', d)
    rows = {mode: [] for mode in ("inversion", "noise")}
    seconds = {mode: 0.0 for mode in rows}
    for n, (frames, d, axis) in enumerate(pan_videos(size=(h, w), num_frames=f, speed=args.speed,
                                                     scenes=args.scenes, seed=args.seed)):
        truth = np.asarray(grid)[:, None] * args.speed * d[None, :]  # (F', 2) fraction of the frame
        truth = truth - truth.mean(0)
        k = 0 if axis == "horizontal" else 1
        for mode in rows:
            t0 = time.perf_counter()
            target = moft.reference_target(pipe, frames, channels=channels, num_steps=args.steps, mode=mode,
                                           seed=args.seed + n)
            seconds[mode] += time.perf_counter() - t0
            est = decode(target.curves[0], channels, base)
            r = float(np.corrcoef(est[:, k], truth[:, k])[0, 1])
            rows[mode].append({"video": n, "axis": axis, "direction": d.tolist(), "correlation": r,
                               "right_sign": bool(np.sign(np.polyfit(grid, est[:, k], 1)[0]) == np.sign(d[k]))})
    summary = {mode: {"mean_correlation": float(np.mean([x["correlation"] for x in v])),
                      "sign_accuracy": float(np.mean([x["right_sign"] for x in v])), "videos": len(v),
                      "seconds": seconds[mode]} for mode, v in rows.items()}
    print(f"model {args.model or 'moft-tiny'}: {len(rows['noise'])} held-out pans, {args.steps} steps, timestep 200")
    print("| reference | mean correlation | right sign | seconds |\n|---|---|---|---|")
    for mode, s in summary.items():
        print(f"| {mode} | {s['mean_correlation']:.3f} | {s['sign_accuracy']:.2f} | {s['seconds']:.1f} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"model": args.model or "moft-tiny", "args": vars(args), "summary": summary, "rows": rows}, fh,
                      indent=2)


if __name__ == "__main__":
    main()

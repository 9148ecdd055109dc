"""How well the general (LK/flow) metrics agree with ground truth on the shipped model's kind of video.

    python scripts/metric_agreement.py [--clips 64] [--size 32]   # -> docs/results/metric_agreement.{json,md}

Synthetic clips with known motion (``moft.io.synthetic.make_clip``: one flat-coloured disk or square
moving in a straight line over a smooth texture, or a pan of such a scene), 8 frames at 32x32 like
the shipped model's videos. Each clip's true motion is the request. For objects, the region is a
circle 2 px wider than the object in frame 0; the object's path is measured by its colour centroid
(synthetic-object protocol) and by ``region_tracks`` with LK, DIS and Farneback (general
protocol). For pans, the camera motion is ``camera_motion`` with DIS and Farneback. A perfect
measurement scores direction success 1, Motion Fidelity 1 and zero error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from moft.eval.metrics import (camera_motion, direction_success, mean_path, motion_fidelity, objmc,  # noqa: E402
                          region_tracks, request_tracks, track_centroid, trajectory_error)
from moft.io.synthetic import COLORS, make_clip  # noqa: E402
from moft.io.jsonio import write_report  # noqa: E402


def objects(clips: int, size: int, seed: int) -> list[dict]:
    rows = []
    for method in ("colour centroid", "lk", "dis", "farneback"):
        success, error, fidelity, distance, lost, ratio = [], [], [], [], [], []
        for n in range(clips):
            clip = make_clip(np.random.default_rng(seed + n), kind="object", size=size, n_frames=8)
            truth = clip.tracks[0]  # (F, 2) px
            video = (clip.frames * 255).round().astype(np.uint8)
            yy, xx = np.mgrid[0:size, 0:size]
            radius = np.sqrt(clip.masks[0].sum() / np.pi)
            region = np.hypot(xx - truth[0, 0], yy - truth[0, 1]) <= radius + 2
            if method == "colour centroid":
                path = track_centroid(video, color=COLORS[clip.colors[0]])
                tracks = None
            else:
                tracks = region_tracks(video, region, method=method)
                path = mean_path(tracks)
            success.append(direction_success(path, truth))
            net = truth[-1] - truth[0]
            if np.isfinite(path[[0, -1]]).all():  # measured net displacement along the true one, over its length
                ratio.append(float((path[-1] - path[0]) @ net / (net @ net)))
            error.append(trajectory_error(path, truth, height=size, width=size))
            if tracks is not None and len(tracks):
                wanted = request_tracks(tracks[:, 0], truth)
                fidelity.append(motion_fidelity(tracks, wanted))
                distance.append(objmc(tracks, wanted))
                lost.append(float(np.isnan(tracks[:, -1, 0]).mean()))
        rows.append({"content": "object", "method": method, "clips": clips,
                     "direction_success": float(np.mean(success)),
                     "mean_distance": float(np.nanmean(error)),
                     "net_ratio": float(np.mean(ratio)) if ratio else None,
                     "motion_fidelity": float(np.nanmean(fidelity)) if fidelity else None,
                     "objmc_px": float(np.nanmean(distance)) if distance else None,
                     "lost_by_last_frame": float(np.mean(lost)) if lost else None})
    return rows


def pans(clips: int, size: int, seed: int) -> list[dict]:
    rows = []
    for method in ("dis", "farneback"):
        error, success = [], []
        for n in range(clips):
            clip = make_clip(np.random.default_rng(seed + 1000 + n), kind="pan", size=size, n_frames=8)
            truth = np.diff(clip.tracks[0], axis=0)  # (F-1, 2) content displacement per frame
            moved = camera_motion((clip.frames * 255).round().astype(np.uint8), method=method)
            error.append(float(np.nanmean(np.linalg.norm(moved - truth, axis=-1))))
            path = np.vstack([np.zeros(2), np.cumsum(moved, 0)])  # (F, 2) the camera's content path
            success.append(direction_success(path, np.vstack([np.zeros(2), np.cumsum(truth, 0)])))
        rows.append({"content": "pan", "method": method, "clips": clips, "direction_success": float(np.mean(success)),
                     "camera_error_px_per_frame": float(np.mean(error))})
    return rows


def markdown(report: dict) -> str:
    lines = [f"Agreement of the metrics with ground truth on {report['clips']} synthetic clips per row "
             f"({report['size']}x{report['size']}, 8 frames; `python scripts/metric_agreement.py`).", "",
             "| content | tracker | direction success | mean distance | Motion Fidelity vs truth (x100) | ObjMC (px) "
             "| tracks lost by the last frame | measured / true net motion | camera error (px/frame) |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f: "–" if v is None else f.format(v)  # noqa: E731
    for r in report["rows"]:
        lines.append(f"| {r['content']} | {r['method']} | {r['direction_success']:.2f} | {fmt(r.get('mean_distance'), '{:.3f}')} "
                     f"| {fmt(r.get('motion_fidelity') and 100 * r['motion_fidelity'], '{:.1f}')} "
                     f"| {fmt(r.get('objmc_px'), '{:.2f}')} | {fmt(r.get('lost_by_last_frame'), '{:.2f}')} "
                     f"| {fmt(r.get('net_ratio'), '{:.2f}')} "
                     f"| {fmt(r.get('camera_error_px_per_frame'), '{:.2f}')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "metric_agreement.json")
    args = parser.parse_args()
    report = {"clips": args.clips, "size": args.size, "seed": args.seed,
              "rows": objects(args.clips, args.size, args.seed) + pans(args.clips, args.size, args.seed)}
    write_report(args.out, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()

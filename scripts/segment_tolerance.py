"""How much of the object the point's segment takes, per colour tolerance (the tolerances of ``grow_segment``).

Usage:
    OMP_NUM_THREADS=1 python scripts/segment_tolerance.py --model moft-tiny-wan --out docs/results/moft-tiny-wan/segment_tolerance

A point drag cuts the object under the point out of the source's frame 0 (``moft.method.drag.object_regions``).
A part of the object the segment leaves out stays behind when the rest is dragged away, a second piece; a segment
that reaches into the background drags background along. On each source of a suite (the tuning suite's seeds by
default, every palette colour as a disk and a square), the point is the suite's (``point_request_of``: the
centroid of the largest piece of the prompt's colour in frame 0), and the object is the piece of the prompt's colour
(``color_mask``) nearest the point in the union of the source's frames (the organisms render frame 0 dimmer than
the frames after it, and what the later frames show of the object is what a missed part becomes). Per tolerance:
*miss*, the share of that object outside the segment; *leak*, the share of the segment more than 2 px from the
object; *fallback*, no segment (every fill over ``SEGMENT_MAX_AREA``: the point keeps its disk). A ladder takes the
widest tolerance whose fill has not leaked (``grow_segment`` with a sequence), what ``object_regions`` grows.
*ladder + later T* is a candidate measured here and not shipped: the ladder's segment joined by the part of the
object the later frames show that frame 0 renders dimmer, within T of the point's colour on frame 0 (``join_later``).
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import moft
from moft.eval.metrics import color_mask
from moft.eval.objects import prompt_color
from moft.eval.point_drag import point_request_of
from moft.io.synthetic import COLORS
from moft.method.drag import SEGMENT_TOLERANCES, grow_segment, point_colour
from moft.method.sampler import sample
from moft.models.image import requires_image

TOLERANCES = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
LATER = (0.35, 0.4, 0.45, 0.5)  # tolerances of the later frames' join (join_later), a candidate measured, not shipped
BAD = 0.1  # a miss or leak over this share counts against a tolerance


def object_extent(frames: np.ndarray, color, point: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the piece of ``color`` nearest ``point`` (x, y px) in the union of ``frames``' masks.

    Example:
        >>> frames = np.zeros((2, 16, 16, 3)); frames[0, 2:5, 2:5] = frames[1, 2:6, 2:6] = (1.0, 0.0, 0.0)
        >>> frames[:, 12:14, 12:14] = (1.0, 0.0, 0.0)                    # another red piece, far from the point
        >>> int(object_extent(frames, (1.0, 0.0, 0.0), np.array([3.0, 3.0])).sum())
        16
    """
    union = color_mask(frames, color).any(0).astype(np.uint8)  # (H, W)
    n, labels = cv2.connectedComponents(union, connectivity=8)
    ys, xs = np.nonzero(labels)
    nearest = labels[ys, xs][np.argmin(np.hypot(xs - point[0], ys - point[1]))]
    return labels == nearest


def coverage(segment: np.ndarray | None, extent: np.ndarray) -> tuple[float, float] | None:
    """``(miss, leak)`` of a segment against the object's extent, or None without a segment.

    Example:
        >>> extent = np.zeros((16, 16), bool); extent[4:8, 4:8] = True
        >>> segment = np.zeros((16, 16), bool); segment[4:6, 4:8] = True; segment[14, 14] = True
        >>> coverage(segment, extent)                                     # half missed; 1 of 9 pixels far off
        (0.5, 0.1111111111111111)
    """
    if segment is None:
        return None
    near = cv2.dilate(extent.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # the object and 2 px around it
    return float((extent & ~segment).sum() / extent.sum()), float((segment & ~near).sum() / segment.sum())


def join_later(segment: np.ndarray, frame: np.ndarray, later: np.ndarray, seeds: np.ndarray,
               tolerance: float) -> np.ndarray:
    """A candidate rule (measured here, not in ``object_regions``): ``segment`` (grown on ``frame``) joined by what the
    ``later`` frames show of the object: pixels in a later frame's fill of the same ``seeds`` (``grow_segment``) whose
    colour on ``frame`` is within ``tolerance`` of the seeds' colour there and that touch the segment (grown by one
    pixel, as a segment's rim). Frames: float in [0, 1]. ``(H, W)`` bool."""
    h, w = frame.shape[:2]
    shown, like = np.zeros((h, w), bool), np.zeros((h, w), bool)
    for other in later:
        fill = grow_segment(other, seeds)
        shown |= fill if fill is not None else False
    for x, y in np.rint(np.asarray(seeds, dtype=np.float64)).astype(int):
        if 0 <= x < w and 0 <= y < h:
            like |= np.linalg.norm(frame - point_colour(frame, x, y), axis=-1) <= tolerance
    extra = shown & like & ~segment
    if not extra.any():
        return segment
    _, labels = cv2.connectedComponents((extra | segment).astype(np.uint8), connectivity=4)
    joined = np.isin(labels, np.unique(labels[segment])) & extra  # the parts that touch the segment
    return segment | (cv2.dilate(joined.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)


def summary(cases: list[dict], name: str) -> dict:
    """Over the sources: fallbacks, and misses and leaks over ``BAD``, of one tolerance (or the ladder)."""
    got = [c[name] for c in cases if c[name] is not None]
    return {"fallback": len(cases) - len(got), "miss_over": sum(m > BAD for m, _ in got),
            "leak_over": sum(k > BAD for _, k in got), "miss_mean": float(np.mean([m for m, _ in got])),
            "leak_mean": float(np.mean([k for _, k in got]))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--suite", default="benchmarks/tune_point_drag.json", help="its seeds, steps and CFG scale")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    suite = json.loads(Path(args.suite).read_text())
    steps, cfg = suite.get("steps", 25), suite.get("guidance_scale", 4.0)
    prompts = [f"{'an' if c[0] in 'aeiou' else 'a'} {c} {shape} standing still"
               for c in COLORS for shape in ("disk", "square")]
    pipe = moft.load_pipeline(args.model)
    if requires_image(pipe):
        ap.error("an image-to-video model drags the segment of the image it is given, not of a frame it renders")
    start, cases = time.perf_counter(), []
    for prompt in prompts:
        for seed in suite["seeds"]:
            frames = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=cfg).frames  # (F, H, W, 3)
            made = point_request_of(frames, prompt, {"direction": "right", "speed": 0.04})
            if made is None:
                continue
            point, color = made[0][0], COLORS[prompt_color(prompt)]  # (2,) px
            extent = object_extent(frames, color, point)
            case = {"prompt": prompt, "seed": seed, "object_px": int(extent.sum())}
            for t in TOLERANCES:
                case[str(t)] = coverage(grow_segment(frames[0], point[None], t), extent)
            ladder = grow_segment(frames[0], point[None], SEGMENT_TOLERANCES)
            case["ladder"] = coverage(ladder, extent)
            for t in LATER:  # the candidate: the ladder's segment joined by what the later frames show
                case[f"ladder + later {t}"] = coverage(None if ladder is None else join_later(
                    ladder, frames[0], frames[1:], point[None], t), extent)
            cases.append(case)
            print(prompt, seed, case["ladder"], flush=True)
    names = [str(t) for t in TOLERANCES] + ["ladder"] + [f"ladder + later {t}" for t in LATER]
    report = {"model": args.model or "moft-tiny", "suite": args.suite, "seeds": suite["seeds"], "prompts": prompts,
              "ladder": list(SEGMENT_TOLERANCES), "bad": BAD, "sources": len(cases),
              "minutes": round((time.perf_counter() - start) / 60, 1), "threads": 1,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "summary": {n: summary(cases, n) for n in names}, "cases": cases}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# The point's segment against the object: {report['model']}", "",
             f"{len(cases)} sources (seeds {suite['seeds'][0]}-{suite['seeds'][-1]} of `{args.suite}`, {len(prompts)} "
             f"prompts: every palette colour as a disk and a square), {report['minutes']} min (1 thread). Written by "
             f"`scripts/segment_tolerance.py` (its docstring defines miss and leak). Ladder: the widest of "
             f"{', '.join(map(str, SEGMENT_TOLERANCES))} whose fill has not leaked (what `object_regions` grows); ladder + "
             f"later T: a candidate, not shipped: joined by what the later frames show within T of the point's colour "
             f"on frame 0 (`join_later`).", "",
             f"| tolerance | no segment (disk) | miss > {BAD:.0%} | leak > {BAD:.0%} | mean miss | mean leak |",
             "|---|---|---|---|---|---|"]
    for n in names:
        s = report["summary"][n]
        lines.append(f"| {n} | {s['fallback']} | {s['miss_over']} | {s['leak_over']} | {s['miss_mean']:.3f} | "
                     f"{s['leak_mean']:.3f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Make the README's point-drag demo: a point on the object dragged along a path, the requested path drawn.

Usage:
    python scripts/make_point_demo.py                         # docs/demo-points.gif and docs/demo-points.json
    python scripts/make_point_demo.py --points paper --out /tmp/p.gif   # Eq. 9's point loss instead

Samples the shipped model's unguided video, takes the centre of the prompt's object in frame 0 as the point,
and drags it right, up-left and down (0.04 of the frame per frame) as a track (``moft.io.tracks.Tracks``, the
form every track file is read into), with what a track file gets (the object under the point cut-and-dragged,
``moft.method.settings.track_settings``) or, ``--points``, that point drag mode over the model's defaults.
Tiles source | each request side by side (4x nearest upscale), the requested path drawn in white up to the
current frame and its current point in yellow; writes the Mean Distance of each (``moft.eval.point_drag``)
beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from moft.eval.objects import object_box, prompt_color
from moft.eval.point_drag import mean_distance
from moft.front.control import control, default_guidance
from moft.io.synthetic import DIRECTIONS
from moft.io.tracks import Tracks
from moft.io.video import write_video
from moft.method.channels import default_channels
from moft.method.sampler import sample
from moft.models.loading import load_pipeline
from moft.models.pipeline import default_guidance_scale

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = ("right", "up left", "down")
SCALE = 4


def draw(frames: np.ndarray, path: np.ndarray) -> np.ndarray:
    """``(F, H, W, 3)`` in [0, 1] upscaled ``SCALE`` times, the requested ``(F, 2)`` pixel path drawn up to each frame."""
    out = []
    for k, frame in enumerate(frames):
        big = np.ascontiguousarray((frame.repeat(SCALE, 0).repeat(SCALE, 1) * 255).astype(np.uint8))
        pts = ((path[: k + 1] + 0.5) * SCALE).round().astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(big, [pts.reshape(-1, 1, 2)], False, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.circle(big, tuple(int(v) for v in pts[-1]), 3, (255, 230, 0), -1, cv2.LINE_AA)
        out.append(big.astype(np.float32) / 255)
    return np.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="moft-tiny")
    ap.add_argument("--prompt", default="a red disk standing still")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", type=float, default=0.04)
    ap.add_argument("--points", choices=("off", "paper", "dift"), default=None,
                    help="a point drag mode (default: none given, as `moft control TRACKS` without --points)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "demo-points.gif")
    args = ap.parse_args()
    pipe = load_pipeline(args.model)
    src = sample(pipe, args.prompt, seed=args.seed, guidance_scale=default_guidance_scale(pipe))
    f, h, w = src.frames.shape[:3]
    start, _ = object_box(src.frames, prompt_color(args.prompt))
    g = default_guidance(args.model, points=args.points) if args.points else None  # None: what tracks get
    panels, report = [draw(src.frames, np.repeat(np.asarray(start)[None], f, 0))], {}
    for d in REQUESTS:
        path = start + np.arange(f)[:, None] * args.speed * np.array([w, h]) * np.asarray(DIRECTIONS[d])  # (F, 2)
        tracks = Tracks(path[None], np.ones((1, f), bool), (w, h))
        res = control(pipe, tracks, prompt=args.prompt, channels=default_channels(args.model), seed=args.seed,
                      init_latents=src.initial_latents, guidance=g)
        md = mean_distance(res.frames, path)
        report[d] = {"requested": path.tolist(), "mean_distance": md, "guidance": res.report["guidance"]["method"],
                     "point_region": res.report["guidance"]["point_region"]}
        panels.append(draw(res.frames, path))
        print(f"{d}: Mean Distance {md:.3f}")
    write_video(args.out, np.concatenate(panels, axis=2), fps=4)
    args.out.with_suffix(".json").write_text(json.dumps({
        "model": args.model, "prompt": args.prompt, "seed": args.seed, "points": args.points, "point": list(start),
        "panels": ["source"] + list(REQUESTS), "requests": report}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

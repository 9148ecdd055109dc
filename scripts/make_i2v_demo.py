"""Make the README's image-to-video demo: an image, then the image animated four ways by dragging its object.

Usage:
    python scripts/make_i2v_demo.py                       # docs/demo-i2v.gif and docs/demo-i2v.json
    python scripts/make_i2v_demo.py --method gradient --out /tmp/g.gif   # gradient guidance on the drag target

Runs ``moft.control`` on the shipped ``moft-tiny-wan-i2v`` with ``examples/red_disk.png`` and a box around the disk
(found in the image) dragged right, left, up and down at 0.05 of the frame per frame, with the model's own defaults
(what ``moft control --image`` runs: its ``moft.json``, a gradient-free cut-and-drag, Time-to-Move's I2V recipe)
unless ``--method gradient`` (MOFT guidance on the image's drag target); tiles image | right | left | up | down side by side (4x nearest
upscale) and writes the measured colour-centroid tracks beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from moft.eval.metrics import path_fit, track_centroid
from moft.eval.objects import object_box
from moft.front.control import control, default_guidance
from moft.io.image import read_image
from moft.io.synthetic import COLORS
from moft.io.trajectory import parse_trajectory
from moft.io.video import write_video
from moft.method.channels import default_channels
from moft.models.image import still_frames
from moft.models.loading import load_pipeline
from moft.models.pipeline import default_video_size

ROOT = Path(__file__).resolve().parents[1]
DIRECTIONS = ("right", "left", "up", "down")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT / "examples" / "red_disk.png")
    ap.add_argument("--prompt", default="a red disk")
    ap.add_argument("--method", choices=("default", "gradient"), default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "demo-i2v.gif")
    args = ap.parse_args()
    model = "moft-tiny-wan-i2v"
    pipe = load_pipeline(model)
    f, h, w = default_video_size(pipe)
    image = read_image(args.image)
    still = still_frames(image, f)  # (F, H, W, 3) in [0, 1]
    _, box = object_box(still, "red")
    g = None  # the folder's guidance: what `moft control --image` runs
    if args.method == "gradient":  # MOFT guidance on the drag target, the folder's other settings
        g = default_guidance(model, method="gradient", start="noise", release=None)
    panels, tracks = [still], {}
    for d in DIRECTIONS:
        traj = parse_trajectory({"version": 1, "frames": f, "regions": [{"mask": {"box": box}, "direction": d}]})
        res = control(pipe, traj, prompt=args.prompt, channels=default_channels(model), seed=args.seed, image=image,
                      guidance=g, target_kind="drag")
        panels.append(res.frames)
        path = track_centroid(res.frames, color=COLORS["red"])
        tracks[d] = {"path": path.tolist(), "fit": path_fit(path)}
        print(d, f"net ({path[-1, 0] - path[0, 0]:+.1f}, {path[-1, 1] - path[0, 1]:+.1f}) px")
    tiled = np.concatenate(panels, axis=2)  # (F, H, 5 W, 3)
    tiled = tiled.repeat(4, axis=1).repeat(4, axis=2)
    write_video(args.out, tiled, fps=4)
    args.out.with_suffix(".json").write_text(json.dumps({
        "model": model, "image": str(args.image.relative_to(ROOT)), "prompt": args.prompt, "seed": args.seed,
        "method": args.method, "guidance": {k: res.report["guidance"][k] for k in ("method", "steps", "start", "release")},
        "box": list(box),
        "panels": ["image"] + list(DIRECTIONS), "tracks": tracks}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Make the README's demo: the shipped model's unguided video and its motion-controlled edits.

Usage:
    python scripts/make_demo.py --out docs/demo.gif [--prompt "a red disk standing still"] [--seed 0]
    python scripts/make_demo.py --model moft-tiny-wan --out docs/demo-wan.gif

Generates the unguided source video, finds the prompt's object in frame 0, writes a trajectory per
requested motion (a box around the object), runs ``moft control`` on the same noise and tiles
source | left | right | up | down | pan-right side by side, with a JSON of the measured tracks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from moft.front.control import control  # noqa: E402
from moft.eval.objects import object_box, prompt_color  # noqa: E402
from moft.eval.metrics import path_fit, track_centroid  # noqa: E402
from moft.method.channels import default_channels  # noqa: E402
from moft.models.loading import load_pipeline  # noqa: E402
from moft.models.pipeline import default_guidance_scale  # noqa: E402
from moft.method.sampler import sample  # noqa: E402
from moft.io.synthetic import COLORS  # noqa: E402
from moft.io.trajectory import parse_trajectory  # noqa: E402
from moft.io.video import write_video  # noqa: E402

REQUESTS = [("left", "object"), ("right", "object"), ("up", "object"), ("down", "object"), ("right", "all")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="moft-tiny (default), moft-tiny-wan or a model folder")
    ap.add_argument("--out", type=Path, default=Path("docs/demo.gif"))
    ap.add_argument("--prompt", default="a red disk standing still")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", type=float, default=0.05)
    ap.add_argument("--scale", type=int, default=4, help="upscale factor of the GIF")
    args = ap.parse_args()
    pipe = load_pipeline(args.model)
    cfg = default_guidance_scale(pipe)  # the model folder's moft.json, else the official 7.5
    channels = default_channels(args.model)
    src = sample(pipe, args.prompt, seed=args.seed, guidance_scale=cfg)
    color = prompt_color(args.prompt)
    found = object_box(src.frames, color)
    if found is None:
        raise SystemExit(f"no {color} object in the source video of seed {args.seed}")
    _, box = found
    panels, tracks = [src.frames], {"source": track_centroid(src.frames, color=COLORS[color]).tolist()}
    for direction, region in REQUESTS:
        traj = parse_trajectory({"version": 1, "frames": src.frames.shape[0], "regions": [
            {"mask": "all" if region == "all" else {"box": box}, "direction": direction, "speed": args.speed}]})
        # guidance settings, target kind and CFG scale: the shipped model's moft.json
        res = control(pipe, traj, prompt=args.prompt, channels=channels, seed=args.seed, init_latents=src.initial_latents)
        panels.append(res.frames)
        path = track_centroid(res.frames, color=COLORS[color])
        tracks[f"{direction} ({region})"] = {"path": path.tolist(), "fit": path_fit(path)}
    tile = np.concatenate(panels, axis=2)  # (F, H, 6W, 3)
    tile = tile.repeat(args.scale, axis=1).repeat(args.scale, axis=2)
    write_video(args.out, tile, fps=4)
    args.out.with_suffix(".json").write_text(json.dumps({"model": args.model or "moft-tiny", "prompt": args.prompt,
                                                         "seed": args.seed, "box": box,
                                                         "panels": ["source"] + [f"{d} ({r})" for d, r in REQUESTS],
                                                         "tracks": tracks}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

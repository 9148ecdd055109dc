"""The wall of ``moft control --image`` over an unguided image-to-video generation, measured side by side.

Usage:
    OMP_NUM_THREADS=1 python scripts/i2v_wall.py [--repeats 3] [--out docs/results/moft-tiny-wan-i2v/i2v_wall.json]

Loads the shipped ``moft-tiny-wan-i2v`` once, then alternates, ``--repeats`` times each: the unguided generation from
``examples/red_disk.png`` (``moft.sample(..., image=)``) and the whole control run with the model's ``moft.json``
defaults (``moft.control(..., image=)``: planning, the image's proxy and its encoding, the guided sampling) for
``examples/image_right.json``; reports the medians and their ratio, with the thread count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from moft.front.control import control
from moft.io.image import read_image
from moft.io.trajectory import load_trajectory
from moft.method.channels import default_channels
from moft.method.sampler import sample
from moft.models.loading import load_pipeline
from moft.models.pipeline import default_video_size

ROOT = Path(__file__).resolve().parents[1]
MODEL, PROMPT = "moft-tiny-wan-i2v", "a red disk"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / MODEL / "i2v_wall.json")
    args = ap.parse_args()
    pipe = load_pipeline(MODEL)
    image = read_image(ROOT / "examples" / "red_disk.png")
    traj = load_trajectory(ROOT / "examples" / "image_right.json", default_frames=default_video_size(pipe)[0])
    channels = default_channels(MODEL)
    plain, guided = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sample(pipe, PROMPT, seed=0, image=image)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = control(pipe, traj, prompt=PROMPT, channels=channels, seed=0, image=image)
        guided.append(time.perf_counter() - t0)
    report = {"model": MODEL, "threads": torch.get_num_threads(), "repeats": args.repeats,
              "method": res.report["guidance"]["method"], "unguided_s": statistics.median(plain),
              "control_s": statistics.median(guided), "ratio": statistics.median(guided) / statistics.median(plain),
              "unguided_all": plain, "control_all": guided}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"unguided {report['unguided_s']:.2f} s, moft control --image {report['control_s']:.2f} s: "
          f"{report['ratio']:.2f}x ({report['threads']} thread(s), method {report['method']})")


if __name__ == "__main__":
    main()

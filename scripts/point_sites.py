"""Measure the point-feature (DIFT) site of a model and write it to the model folder.

Usage:
    python scripts/point_sites.py                              # moft-tiny
    python scripts/point_sites.py --model moft-tiny-wan --write-defaults

For held-out synthetic object clips with known tracks, frame 0's raw feature at the object's
centre is matched (cosine) against every cell of each later frame at every block output x
timestep (``moft.front.point_sites``); the share found within 0.1 of the frame of the truth picks
the site and timestep. Writes ``docs/results/point_sites_<model>.{json,md}``; with
``--write-defaults`` the choice goes into the shipped model's ``moft.json`` (``"point_site"``,
``"point_timestep"``). Run with ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import moft
from moft.front.point_sites import TIMESTEPS, point_sites, write_point_defaults
from moft.models.pipeline import SHIPPED_DIR


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="moft-tiny")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--timesteps", default=",".join(map(str, TIMESTEPS)))
    ap.add_argument("--write-defaults", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    pipe = moft.load_pipeline(args.model)
    rep = point_sites(pipe, timesteps=[int(t) for t in args.timesteps.split(",")], clips=args.clips,
                      model_name=args.model, progress=lambda d, n: print(f"\r{d}/{n}", end="", flush=True))
    print()
    out = rep.save(Path("docs/results") / f"point_sites_{args.model}.json")
    print(rep.markdown())
    if args.write_defaults:
        write_point_defaults(SHIPPED_DIR / args.model, rep, out)
        print(f"wrote point_site / point_timestep to {SHIPPED_DIR / args.model / 'moft.json'}")


if __name__ == "__main__":
    main()

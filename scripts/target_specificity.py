"""How direction-specific are a model's MOFT guidance targets? (a precondition for steering)

Guidance pulls a region's mean MOFT curve ``(F, d)`` towards a target curve. It can only steer
if targets for different directions differ by more than targets for the same direction do. This
script builds the targets exactly as guidance does (``moft.targets.reference_target``: DDIM
inversion of synthetic camera pans, whole-frame region) for the 8 directions x ``--scenes``
scenes, at several inversion timesteps and for several channel sets, and reports

* the mean cosine similarity of two targets of the same direction (other scenes), of opposite
  directions, and of any two different directions;
* nearest-centroid accuracy (leave one scene out) of the 8 directions from the target curve:
  what a perfect optimiser matching this target could tell apart (chance 12.5%).

Usage:
    python scripts/target_specificity.py --out docs/results/target_specificity.json   # + .md beside it
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
sys.path.insert(0, str(ROOT / "src"))


def specificity(curves: torch.Tensor) -> dict:
    """Statistics of target curves ``(D, S, F, d)`` (D directions in DIRECTIONS order, S scenes)."""
    from moft.synthetic import DIRECTIONS

    names = list(DIRECTIONS)
    n_dir, n_scene = curves.shape[:2]
    flat = torch.nn.functional.normalize(curves.flatten(2).double(), dim=-1)  # (D, S, F*d)
    cos = torch.einsum("ask,btk->asbt", flat, flat)  # (D, S, D, S)
    same_scene = torch.eye(n_scene, dtype=torch.bool)
    same = cos.diagonal(dim1=0, dim2=2).permute(2, 0, 1)[:, ~same_scene].mean()  # (D, S, S) off-diagonal
    opposite_of = [names.index(next(m for m in names if np.allclose(DIRECTIONS[m], -np.asarray(DIRECTIONS[n]))))
                   for n in names]
    opposite = torch.stack([cos[a, :, opposite_of[a]] for a in range(n_dir)]).mean()
    other = cos.permute(0, 2, 1, 3)[~torch.eye(n_dir, dtype=torch.bool)].mean()  # (D, D, S, S) off-diagonal
    hits = 0
    for s in range(n_scene):  # leave scene s out: centroids of the other scenes
        keep = torch.arange(n_scene) != s
        centroids = curves[:, keep].flatten(2).mean(1)  # (D, F*d)
        dist = torch.cdist(curves[:, s].flatten(1), centroids)  # (D, D)
        hits += int((dist.argmin(1) == torch.arange(n_dir)).sum())
    return {"cos_same_direction": float(same), "cos_opposite": float(opposite), "cos_other_directions": float(other),
            "nearest_centroid_accuracy": hits / (n_dir * n_scene)}


def measure(pipe, channel_sets: dict, timesteps: list[int], scenes: int, speed: float, seed: int) -> list[dict]:
    """Rows of ``specificity`` per (timestep, channel set); ``channel_sets`` maps a name to indices or None."""
    from moft.channels import default_video_size
    from moft.synthetic import DIRECTIONS, make_clip
    from moft.targets import reference_target

    f, h, _ = default_video_size(pipe)
    clips = {d: [make_clip(np.random.default_rng(seed + s), kind="pan", n_frames=f, size=h, direction=d, speed=speed)
                 for s in range(scenes)] for d in DIRECTIONS}
    rows = []
    for t in timesteps:
        full = torch.stack([torch.stack([
            reference_target(pipe, (c.frames * 255).round().astype(np.uint8), channels=None, timestep=t).curves[0]
            for c in clips[d]]) for d in DIRECTIONS])  # (D, S, F, C): all channels, whole frame
        for name, idx in channel_sets.items():
            curves = full if idx is None else full[..., torch.as_tensor(idx)]
            rows.append({"timestep": t, "channels": name, "num_channels": int(curves.shape[-1]), **specificity(curves)})
    return rows


def markdown(report: dict) -> str:
    lines = [f"Direction specificity of MOFT guidance targets on {report['model']} (reference targets of synthetic "
             f"pans, whole frame, {report['scenes']} scenes x 8 directions): mean cosine similarity between "
             "targets, and nearest-centroid accuracy of the direction from the target (leave one scene out; chance "
             "12%).", "",
             "| timestep | channels | same direction | opposite | other directions | accuracy |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['timestep']} | {r['channels']} ({r['num_channels']}) | {r['cos_same_direction']:+.2f} "
                     f"| {r['cos_opposite']:+.2f} | {r['cos_other_directions']:+.2f} "
                     f"| {100 * r['nearest_centroid_accuracy']:.0f}% |")
    return "\n".join(lines) + "\n"


def main():
    from moft.channels import fit_channels
    from moft.models import default_channels, load_pipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="moft-tiny (default), a pipeline folder or a hub id")
    ap.add_argument("--timesteps", default="200,500,800")
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--speed", type=float, default=1.6, help="pan speed, px/frame")
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    t0 = time.time()
    shipped = default_channels(args.model)
    sets = {"all": None}
    if shipped is not None:
        sets["shipped (PCA 4%)"] = shipped.indices.tolist()
        sep = fit_channels(pipe, method="inversion", scenes=4, rank="separation", fraction=0.04)
        sets["separation 4%"] = sep.indices.tolist()
    rows = measure(pipe, sets, [int(t) for t in args.timesteps.split(",")], args.scenes, args.speed, args.seed)
    report = {"model": args.model or "moft-tiny", "scenes": args.scenes, "speed_px": args.speed,
              "channel_sets": sets, "rows": rows, "seconds": time.time() - t0}
    print(markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(report))


if __name__ == "__main__":
    main()

"""How direction-specific are a model's MOFT guidance targets? (a precondition for steering)

Guidance pulls a region's mean MOFT curve ``(F, d)`` towards a target curve. It can only steer
if targets for different directions differ by more than targets for the same direction do. This
script builds the targets exactly as guidance does (``moft.method.targets.reference_target``: DDIM
inversion of a synthetic clip, region-mean curve) for the 8 directions x ``--scenes`` scenes, for
two kinds of clip — camera pans over the whole frame (what the paper fits its channels on) and
one moving object with a box around its path (the region object control guides) — at several
inversion timesteps and for several channel sets, and reports

* the mean cosine similarity of two targets of the same direction (other scenes), of opposite
  directions, and of any two different directions;
* nearest-centroid accuracy (leave one scene out) of the 8 directions from the target curve:
  what a perfect optimiser matching this target could tell apart (chance 12.5%).

It also compares magnitudes: the norm of the region-mean MOFT curve that guidance sees while
sampling (the conditional branch at the guided steps, object box of the finished video) over the
mean norm of object targets inverted to the same timestep. A ratio well above 1 means the MSE loss
is lowered most cheaply by shrinking the generated curve, i.e. by damping motion.

Usage:
    python scripts/target_specificity.py --out docs/results/target_specificity.json   # + .md beside it
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def specificity(curves: torch.Tensor) -> dict:
    """Statistics of target curves ``(D, S, F, d)`` (D directions in DIRECTIONS order, S scenes)."""
    from moft.io.synthetic import DIRECTIONS

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


def path_box(track: np.ndarray, grid: tuple[int, int], scale: int, pad: float) -> torch.Tensor:
    """``(h, w)`` bool mask on the latent grid: the box around a ``(F, 2)`` pixel path, padded by ``pad`` px."""
    lo = np.floor((track.min(0) - pad) / scale).astype(int)
    hi = np.ceil((track.max(0) + pad) / scale).astype(int)
    (x0, x1), (y0, y1) = np.clip([lo[0], hi[0]], 0, grid[1] - 1), np.clip([lo[1], hi[1]], 0, grid[0] - 1)
    mask = torch.zeros(grid, dtype=torch.bool)
    mask[y0:y1 + 1, x0:x1 + 1] = True
    return mask


def target_curves(pipe, kind: str, timestep: int, scenes: int, speed: float, seed: int) -> torch.Tensor:
    """``(D, S, F, C)`` region-mean reference targets (all channels) of ``kind`` clips ("pan": whole
    frame; "object": a box around the object's path) in each direction."""
    from moft.method.channels import default_video_size
    from moft.models.latents import vae_scale
    from moft.io.synthetic import DIRECTIONS, make_clip
    from moft.method.targets import reference_target

    f, h, w = default_video_size(pipe)
    s = vae_scale(pipe)
    out = []
    for d in DIRECTIONS:
        per_scene = []
        for k in range(scenes):
            clip = make_clip(np.random.default_rng(seed + k), kind=kind, n_frames=f, size=h, direction=d, speed=speed,
                             describe_motion=False)
            masks = None if kind == "pan" else path_box(clip.tracks[0], (h // s, w // s), s, pad=4.0)[None]
            per_scene.append(reference_target(pipe, (clip.frames * 255).round().astype(np.uint8), channels=None,
                                              masks=masks, timestep=timestep).curves[0])
        out.append(torch.stack(per_scene))
    return torch.stack(out)


def measure(pipe, channel_sets: dict, timesteps: list[int], scenes: int, speed: float, seed: int,
            kinds: tuple[str, ...] = ("pan", "object")) -> list[dict]:
    """Rows of ``specificity`` per (clip kind, timestep, channel set); ``channel_sets`` maps a name to
    indices or None (all channels)."""
    rows = []
    for kind in kinds:
        for t in timesteps:
            full = target_curves(pipe, kind, t, scenes, speed, seed)  # (D, S, F, C)
            for name, idx in channel_sets.items():
                curves = full if idx is None else full[..., torch.as_tensor(idx)]
                rows.append({"clips": kind, "timestep": t, "channels": name, "num_channels": int(curves.shape[-1]),
                             **specificity(curves)})
    return rows


@torch.no_grad()
def norm_ratio(pipe, *, prompt: str, seeds: list[int], guided_steps: list[int], steps: int, guidance_scale: float,
               scenes: int, speed: float, seed: int) -> list[dict]:
    """Per guided step: norm of the generated region-mean MOFT curve over the mean object-target norm."""
    from moft.eval.objects import object_box, prompt_color
    from moft.method.features import moft, region_mean
    from moft.models.loading import ddim_scheduler
    from moft.method.sampler import sample
    from moft.io.trajectory import parse_trajectory

    sched = ddim_scheduler(pipe)
    sched.set_timesteps(steps)
    rows = []
    for i in guided_steps:
        t = int(sched.timesteps[i])
        target_norm = float(target_curves(pipe, "object", t, scenes, speed, seed).flatten(2).norm(dim=-1).mean())
        gen = []
        for s in seeds:
            out = sample(pipe, prompt, seed=s, steps=steps, guidance_scale=guidance_scale, capture_at=i)
            found = object_box(out.frames, prompt_color(prompt))
            if found is None:
                continue
            grid = tuple(out.latents.shape[-2:])
            traj = parse_trajectory({"version": 1, "frames": out.frames.shape[0],
                                     "regions": [{"mask": {"box": found[1]}, "direction": [1, 0], "speed": 0.05}]})
            mask = torch.from_numpy(traj.masks(*grid))[0]  # the region the suites guide
            feat = moft(next(iter(out.features.values())).float(), None, grid)  # (1, F, C, h, w)
            gen.append(float(region_mean(feat, mask)[0].norm()))
        rows.append({"step": i, "timestep": t, "samples": len(gen), "generated_norm": float(np.mean(gen)) if gen else None,
                     "target_norm": target_norm, "ratio": float(np.mean(gen)) / target_norm if gen else None})
    return rows


def markdown(report: dict) -> str:
    lines = [f"Direction specificity of MOFT guidance targets on {report['model']} (region-mean reference targets of "
             f"synthetic clips, {report['scenes']} scenes x 8 directions; pans: whole frame, object: a box around its "
             "path): mean cosine similarity between targets, and nearest-centroid accuracy of the direction from the "
             "target (leave one scene out; chance 12%).", "",
             "| clips | timestep | channels | same direction | opposite | other directions | accuracy |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['clips']} | {r['timestep']} | {r['channels']} ({r['num_channels']}) "
                     f"| {r['cos_same_direction']:+.2f} | {r['cos_opposite']:+.2f} | {r['cos_other_directions']:+.2f} "
                     f"| {100 * r['nearest_centroid_accuracy']:.0f}% |")
    if report.get("norms"):
        lines += ["", f"Magnitude: region-mean MOFT curve (all channels) that guidance sees while sampling "
                      f"'{report['norm_prompt']}' (object box, conditional branch) against object targets inverted to "
                      "the same timestep.", "",
                  "| guided step | timestep | samples | generated norm | target norm | ratio |", "|---|---|---|---|---|---|"]
        for r in report["norms"]:
            fmt = (lambda v: "–" if v is None else f"{v:.2f}")  # noqa: E731
            lines.append(f"| {r['step']} | {r['timestep']} | {r['samples']} | {fmt(r['generated_norm'])} "
                         f"| {r['target_norm']:.2f} | {fmt(r['ratio'])} |")
    return "\n".join(lines) + "\n"


def main():
    from moft.method.channels import fit_channels
    from moft.models.loading import load_pipeline
    from moft.method.channels import default_channels
    from moft.io.jsonio import write_report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="moft-tiny (default), a pipeline folder or a hub id")
    ap.add_argument("--timesteps", default="200,500,800")
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--speed", type=float, default=1.6, help="speed of the pans and objects, px/frame")
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--norm-prompt", default="a red disk standing still")
    ap.add_argument("--norm-seeds", type=int, default=4, help="samples for the magnitude comparison (0: skip)")
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
    norms = norm_ratio(pipe, prompt=args.norm_prompt, seeds=list(range(args.norm_seeds)), guided_steps=[3, 7, 11],
                       steps=25, guidance_scale=4.0, scenes=args.scenes, speed=args.speed,
                       seed=args.seed) if args.norm_seeds else []
    report = {"model": args.model or "moft-tiny", "scenes": args.scenes, "speed_px": args.speed,
              "channel_sets": sets, "rows": rows, "norm_prompt": args.norm_prompt, "norms": norms,
              "seconds": time.time() - t0}
    print(markdown(report))
    if args.out:
        write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()

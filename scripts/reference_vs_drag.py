"""Why a reference clip's motion steers one organism and not the other: compare the two targets' MOFT.

Usage:
    python scripts/reference_vs_drag.py --models moft-tiny moft-tiny-wan --out docs/results/reference_vs_drag.json

For each model and each of the Table 1 (reference) suite's prompts (seed 0): the unguided source's object box, and
for each of 4 directions (a) the drag target (the source dragged that way, inverted: what control uses by default and
what steers both organisms) and (b) the reference target (a synthetic pan of another scene that way, inverted: what
the Table 1 reference rows use) and (c) the source itself panned that way (the camera_pan suite's drag target, which
steers both), all over all channels with content removal. Reported: the mean per-position cosine between each
pair's maps of each direction, inside the object's box, over frames 1.. (frame 0 of a drag is the source itself).
A target that carries its direction the way the other does has a diagonal above its off-diagonal;
``specificity`` = mean diagonal minus mean off-diagonal. (b) against (c) tells a pan of another scene from a pan of
this one; (c) against (a), a pan from an object's move (same scene); (b) against (a), both. For (a) against (a) and
(b) against (b), ``other_directions`` is the mean cosine between one scene's maps of different directions: how much
of a map the scene, rather than the direction, decides.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from moft.eval.objects import object_box
from moft.models.loading import load_pipeline
from moft.models.pipeline import default_video_size
from moft.method.sampler import sample
from moft.io.synthetic import DIRECTIONS, make_clip
from moft.method.targets import drag_target, reference_target
from moft.io.trajectory import parse_trajectory

WORDS = ("right", "down", "left", "up")
PROMPTS = ("a red disk standing still", "a blue square standing still", "a yellow disk standing still")
SPEED = 0.05  # the suite's: a fraction of the frame per frame


def _cosines(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean cosine over channels between ``(F, d, h, w)`` maps at the mask's positions, frames 1.."""
    cos = torch.nn.functional.cosine_similarity(a[1:], b[1:], dim=1)  # (F-1, h, w)
    return float(cos[:, mask].mean())


def compare(pipe, prompt: str, seed: int = 0) -> dict | None:
    f, h, w = default_video_size(pipe)
    src = sample(pipe, prompt, seed=seed).frames  # (F, H, W, 3)
    found = object_box(src.astype(np.float32) / 255 if src.dtype == np.uint8 else src, prompt.split()[1])
    if found is None:
        return None
    _, box = found
    drags, pans, refs = {}, {}, {}  # direction -> (F, d, h, w) maps
    for word in WORDS:
        traj = parse_trajectory({"version": 1, "frames": f, "regions": [
            {"mask": {"box": box}, "direction": list(DIRECTIONS[word]), "speed": SPEED}]})
        drags[word] = drag_target(pipe, src, traj, channels=None).maps[0]
        whole = parse_trajectory({"version": 1, "frames": f, "regions": [
            {"mask": "all", "direction": list(DIRECTIONS[word]), "speed": SPEED}]})
        pans[word] = drag_target(pipe, src, whole, channels=None).maps[0]  # the source panned (camera_pan's target)
        mask = torch.from_numpy(traj.masks(*drags[word].shape[-2:]))  # (1, h, w) the object's box
        clip = make_clip(np.random.default_rng(seed + 7), kind="pan", n_frames=f, size=h, direction=word,
                         speed=SPEED * 32)  # as the suite makes its reference clips
        refs[word] = reference_target(pipe, (clip.frames * 255).round().astype(np.uint8), channels=None,
                                      masks=mask).maps[0]
    mask = mask[0]  # (h, w)
    table = {kind: [[_cosines(x[a], y[b], mask) for b in WORDS] for a in WORDS]
             for kind, (x, y) in {"reference_vs_drag": (refs, drags), "reference_vs_pan": (refs, pans),
                                  "pan_vs_drag": (pans, drags), "drag_vs_drag": (drags, drags),
                                  "reference_vs_reference": (refs, refs)}.items()}
    out = {"prompt": prompt, "seed": seed, "box": box, "cosine": table}
    for kind, m in table.items():
        m = np.asarray(m)
        off = m[~np.eye(len(WORDS), dtype=bool)].mean()
        a, b = kind.split("_vs_")
        if a == b:  # a map against itself on the diagonal: only the other directions say something
            out[f"other_directions_{kind}"] = float(off)
        else:
            out[f"specificity_{kind}"] = float(np.diag(m).mean() - off)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["moft-tiny", "moft-tiny-wan"])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report = {"directions": list(WORDS), "prompts": list(PROMPTS), "models": {}}
    for model in args.models:
        t0 = time.time()
        pipe = load_pipeline(model)
        rows = [r for r in (compare(pipe, p) for p in PROMPTS) if r is not None]
        summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]
                   if k.startswith(("specificity", "other_directions"))}
        report["models"][model] = {"rows": rows, **summary, "seconds": time.time() - t0}
        print(model, json.dumps(summary), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

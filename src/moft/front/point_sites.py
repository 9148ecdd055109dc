"""Where a model's features find points again: a correspondence map over sites x timesteps (point drag's site).

Example:
    >>> import moft
    >>> from moft.front.point_sites import point_sites
    >>> rep = point_sites(moft.load_pipeline(), sites=["up_blocks.1"], timesteps=(200,), clips=2)
    >>> rep.accuracy.shape                      # (sites, timesteps)
    (1, 1)
    >>> rep.recommendation["point_site"], rep.recommendation["point_timestep"]
    ('up_blocks.1', 200)

The point loss of point drag (paper Eq. 4) pulls each frame's feature at the requested point
towards frame 0's feature at frame 0's point; it can only move content if that feature *finds* the
content again in later frames (DIFT's premise: diffusion features correspond). This measures it, as
``moft locate`` measures where motion is decodable. Held-out synthetic clips with known tracks
(``moft.io.synthetic.make_clip``, moving objects, 8 directions) are encoded once; per timestep each
clip's latents are noised to it and one denoiser forward records every candidate site. Per clip,
site and later latent frame, frame 0's raw feature at the object's true point (bilinear,
``moft.method.points.sample_features``) is compared by cosine with every cell of that frame; the
best cell's centre is the found position. Accuracy: the share of (clip, frame) pairs found within
``TOLERANCE`` of the frame of the truth; mean error in fractions of the frame. The recommendation is
the most accurate cell (ties: the smaller mean error).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ..io.outputs import atomic_write_text
from ..io.synthetic import DIRECTIONS, make_clip
from ..io.video import resize_video, to_uint8
from ..method.capture import capture
from ..method.channels import default_video_size
from ..method.inversion import noised_features
from ..method.points import sample_features
from ..models.latents import encode_prompt, encode_video
from ..models.loading import denoiser
from ..models.pipeline import DEFAULTS_FILE, latent_time_grid
from .locate import candidate_sites, check_defaults_folder

TIMESTEPS = (100, 261, 400, 600)  # DIFT's own is t = 261
TOLERANCE = 0.05  # a point is found when the best cell lies within this fraction of the frame of the truth


class PointSitesError(ValueError):
    """Bad settings for ``point_sites`` (sites, timesteps, clips)."""


def found_positions(feats: torch.Tensor, start: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Where each later frame's features are most like frame 0's at ``start``.

    Example:
        >>> base = torch.randn(1, 6, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> feats = torch.cat([base.roll(k, dims=3) for k in range(3)])   # content 1 cell/frame right
        >>> found_positions(feats, torch.tensor([[9.5, 5.5]]), size=(32, 32)).tolist()   # cell (1, 2); 4 px a cell
        [[[9.5, 5.5]], [[13.5, 5.5]], [[17.5, 5.5]]]

    Args:
        feats: ``(F, C, h, w)`` features of one clip.
        start: ``(N, 2)`` pixel points in frame 0 of a ``size`` frame.
        size: ``(W, H)`` of the frame.

    Returns:
        ``(F, N, 2)`` pixel centres of the best-matching cells (frame 0 included, matched against itself).
    """
    f, c, h, w = feats.shape
    query = sample_features(feats[:1], start[None], size)[0]  # (N, C)
    cells = rearrange(feats, "f c h w -> f (h w) c")  # (F, hw, C)
    sim = torch.nn.functional.cosine_similarity(cells[:, None], query[None, :, None], dim=-1)  # (F, N, hw)
    best = sim.argmax(dim=-1)  # (F, N)
    row, col = best // w, best % w
    x = (col.float() + 0.5) * size[0] / w - 0.5
    y = (row.float() + 0.5) * size[1] / h - 0.5
    return torch.stack([x, y], dim=-1)  # (F, N, 2)


@dataclass
class PointSitesReport:
    """Accuracy ``(S, T)`` and mean error ``(S, T)`` (fractions of the frame) per site and timestep."""

    sites: list[str]
    timesteps: list[int]
    accuracy: np.ndarray
    error: np.ndarray
    recommendation: dict
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"sites": self.sites, "timesteps": self.timesteps,
                "accuracy": np.round(self.accuracy, 4).tolist(), "mean_error": np.round(self.error, 4).tolist(),
                "recommendation": self.recommendation, "meta": self.meta}

    def markdown(self) -> str:
        m = self.meta
        head = "| site | " + " | ".join(f"t = {t}" for t in self.timesteps) + " |"
        rule = "|---|" + "---|" * len(self.timesteps)
        rows = [f"| {s} | " + " | ".join(f"{100 * self.accuracy[i, j]:.1f}% ({self.error[i, j]:.3f})"
                                         for j in range(len(self.timesteps))) + " |"
                for i, s in enumerate(self.sites)]
        rec = self.recommendation
        return "\n".join([
            f"# Point-feature sites: {m.get('model', '')}", "",
            f"{m['clips']} held-out synthetic clips (moving objects, 8 directions, seed {m['seed']}), "
            f"{m['pairs_per_cell']} (clip, later frame) pairs per cell; {m['forwards']} denoiser forwards "
            f"in {m['seconds']} s. Cell: the share of frame-0 points (the object's centre) whose best cosine "
            f"match among a later frame's raw features lies within {TOLERANCE} of the frame of the truth, and "
            f"(in brackets) the mean distance to it in fractions of the frame. Written by `scripts/point_sites.py`.",
            "", head, rule, *rows, "",
            f"Chosen: `{rec['point_site']}` at t = {rec['point_timestep']} "
            f"({100 * rec['accuracy']:.1f}%, mean error {rec['mean_error']:.3f}; binomial standard error "
            f"{100 * rec['standard_error']:.1f} points). Cells within one standard error: "
            + (", ".join(f"{s} t={t} ({100 * a:.1f}%)" for s, t, a in rec["near_best"]) or "none") + ".", ""])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        atomic_write_text(path.with_suffix(".md"), self.markdown())
        return path


def _clips(count: int, frames: int, height: int, width: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` object clips (directions in turn): ``(frames (F, H, W, 3) uint8, track (F, 2) pixels)``."""
    side = max(height, width)
    rng = np.random.default_rng(seed)
    names = list(DIRECTIONS)
    out = []
    for k in range(count):
        clip = make_clip(rng, size=side, n_frames=frames, kind="object", direction=names[k % len(names)],
                         describe_motion=False)
        video = to_uint8(clip.frames)
        track = clip.tracks[0].astype(np.float64)  # (F, 2) pixels of the square render
        if (side, side) != (height, width):
            video = resize_video(video, height, width)
            track = (track + 0.5) * np.array([width / side, height / side]) - 0.5
        out.append((video, track))
    return out


@torch.no_grad()
def point_sites(pipe, *, sites: list[str] | None = None, timesteps=TIMESTEPS, clips: int = 32, seed: int = 4321,
                model_name: str = "", progress=None) -> PointSitesReport:
    """Measure how well each site x timestep's features find a frame-0 point again in later frames.

    Args:
        pipe: a diffusers video pipeline of a supported architecture.
        sites: module paths (default: every block output, ``moft.front.locate.candidate_sites``).
        timesteps: noise levels (one forward per clip and timestep).
        clips: held-out synthetic object clips (the default seed is not the training's nor ``locate``'s).
        seed: clips and noise.
        model_name: recorded in the report.
        progress: optional ``progress(done, total)`` per forward.
    """
    net = denoiser(pipe)
    sites = list(dict.fromkeys(sites or [s for s in candidate_sites(net) if "motion_modules" not in s]))
    capture(net, sites)  # every site exists (CaptureError names a missing one) before any work
    top_t = int(getattr(pipe.scheduler.config, "num_train_timesteps", 1000))
    timesteps = [int(t) for t in timesteps]
    if not timesteps or any(not 0 <= t < top_t for t in timesteps) or len(set(timesteps)) != len(timesteps):
        raise PointSitesError(f"timesteps must be distinct integers in [0, {top_t}), got {timesteps}")
    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise PointSitesError(f"clips must be a whole number >= 1, got {clips!r}")
    f, h, w = default_video_size(pipe)
    grid = latent_time_grid(pipe, f)  # the video frame each latent frame stands for
    data = _clips(clips, f, h, w, seed)
    cond = {"encoder_hidden_states": encode_prompt(pipe, "")}
    latents = [encode_video(pipe, video) for video, _ in data]  # [(1, F', C, h', w')]
    hits = np.zeros((len(sites), len(timesteps)))
    errors = np.zeros((len(sites), len(timesteps)))
    pairs = clips * (len(grid) - 1)
    start_time, done = time.perf_counter(), 0
    for j, t in enumerate(timesteps):
        for n, ((_, track), z0) in enumerate(zip(data, latents)):
            feats = noised_features(pipe, z0, cond, timestep=t, seed=seed + n, sites=sites)
            truth = torch.from_numpy(track[grid]).float()  # (F', 2) the object's centre per latent frame
            for i, s in enumerate(sites):
                found = found_positions(feats[s][0].float(), truth[:1], (w, h))[1:, 0]  # (F' - 1, 2)
                dist = ((found - truth[1:]) / torch.tensor([w, h])).norm(dim=-1)  # (F' - 1,) fractions
                hits[i, j] += float((dist <= TOLERANCE).sum())
                errors[i, j] += float(dist.sum())
            done += 1
            if progress is not None:
                progress(done, clips * len(timesteps))
    accuracy, error = hits / pairs, errors / pairs
    best = min(((i, j) for i in range(len(sites)) for j in range(len(timesteps))),
               key=lambda c: (-accuracy[c], error[c]))
    p = float(accuracy[best])
    se = float(np.sqrt(p * (1 - p) / pairs))
    near = [[sites[a], timesteps[b], round(float(accuracy[a, b]), 4)] for a in range(len(sites))
            for b in range(len(timesteps)) if (a, b) != best and accuracy[a, b] >= p - se]
    rec = {"point_site": sites[best[0]], "point_timestep": timesteps[best[1]], "accuracy": p,
           "mean_error": float(error[best]), "standard_error": round(se, 4), "near_best": near}
    meta = {"model": model_name, "clips": clips, "seed": seed, "frames": f, "height": h, "width": w,
            "latent_frames": len(grid), "pairs_per_cell": pairs, "forwards": clips * len(timesteps),
            "seconds": round(time.perf_counter() - start_time, 1), "tolerance": TOLERANCE,
            "features": "raw block output (no content removal), cosine over all channels"}
    return PointSitesReport(sites, timesteps, accuracy, error, rec, meta)


def write_point_defaults(folder: str | Path, report: PointSitesReport, report_path: str | Path | None = None) -> None:
    """Put the measured point site and timestep into a model folder's ``moft.json``
    (``"point_site"``, ``"point_timestep"``, and the figures under ``"point_sites"``).

    Example:
        >>> write_point_defaults("my-model", rep, "docs/results/point_sites_my-model.json")  # doctest: +SKIP
    """
    folder = Path(folder)
    check_defaults_folder(folder)
    path = folder / DEFAULTS_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    rec = report.recommendation
    data["point_site"], data["point_timestep"] = rec["point_site"], rec["point_timestep"]
    data["point_sites"] = {k: rec[k] for k in ("point_site", "point_timestep", "accuracy", "mean_error")}
    if report_path is not None:
        data["point_sites"]["report"] = str(report_path)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")

"""Where motion lives in a model: direction decoding over capture sites x timesteps (``moft locate``).

Example:
    >>> import moft
    >>> rep = moft.locate(moft.load_pipeline(), model_name="moft-tiny")    # doctest: +SKIP
    >>> rep.recommendation["site"], rep.recommendation["timestep"], rep.recommendation["fraction"]  # doctest: +SKIP
    ('up_blocks.1', 100, 0.1)
    >>> rep.save("locate.json")          # + locate.md (tables) and locate.png (the map)  # doctest: +SKIP

Procedure. Held-out synthetic clips with known motion (whole-frame pans and moving objects, 8
directions, at the model's frame count and size) are encoded once; for each timestep each clip's
latents are noised to it and one denoiser forward records every candidate site at once
(``inversion.noised_features``). Per clip and site the sample is frame 0's feature averaged over the
clip's motion region (the whole frame for a pan, the object's swept path otherwise), on the latent
grid, either raw or with content correlation removed (MOFT, paper Eq. 1). A linear classifier
(standardised multinomial logistic regression), cross-validated over clips, decodes the direction
(chance 12.5%). Concentration: the same from only the top 1/4/10% of channels by the paper's
ranking (|PC1 loading| on left/right and up/down pans, ``channels.axis_loadings``), ranked on each
fold's training pans only. Correspondence (the paper's heatmaps, scored; not used for the
recommendation): the share of clips whose frame-0 MOFT at a known point is most similar, in the last
frame, within ``FLOW_TOLERANCE`` of where that content went. Cost: forwards = clips x timesteps, each
as deep as the deepest site.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import rearrange

from ..io.outputs import atomic_write_bytes, atomic_write_text
from ..io.synthetic import DIRECTIONS, SPEED_RANGE, make_clip, pan_video
from ..io.video import resize_video, to_uint8
from ..method.capture import capture, capture_sites
from ..method.channels import MotionChannels, axis_loadings, centre_crop, top_channels
from ..method.features import cosine_map, region_mean, remove_content_correlation, resize
from ..method.inversion import clip_conditioning, noised_features
from ..models.adapters import architecture_of, default_site
from ..models.image import requires_image
from ..models.latents import encode_prompt, encode_video
from ..models.loading import placement
from ..models.pipeline import CHANNELS_FILE, DEFAULTS_FILE, default_video_size, denoiser, resolve_model

FRACTIONS = (0.01, 0.04, 0.10)
TIMESTEPS = (100, 200, 400, 700)
KINDS = ("pan", "object")
CHANCE = 1 / 8
FLOW_TOLERANCE = 0.1  # a correspondence hits when it lands within this fraction of the frame of the truth
# the pans each axis' channels are ranked on (as fit_channels: left/right and up/down), by direction name
AXIS_PANS = {"horizontal": ("right", "left"), "vertical": ("down", "up")}


class LocateError(ValueError):
    """Bad settings for ``locate`` (sites, timesteps, budget) or a model folder it cannot write to."""


@dataclass
class ProbeClip:
    """One labelled clip: ``frames (F, H, W, 3)`` uint8, ``direction`` index into ``DIRECTIONS``,
    ``kind`` (``"pan"`` / ``"object"``), ``region (H, W)`` float weights of where the motion is, and a
    known correspondence: the content at ``start`` in frame 0 is at ``end`` in the last frame
    (``(x, y)`` fractions of the frame; a pan's frame centre, an object's centre)."""

    frames: np.ndarray
    direction: int
    kind: str
    region: np.ndarray
    start: np.ndarray
    end: np.ndarray


def probe_clips(*, num_frames: int, height: int, width: int, per_direction: int, kinds=KINDS,
                seed: int = 1234) -> list[ProbeClip]:
    """``per_direction`` clips of each kind for each of the 8 directions, deterministic given ``seed``.

    Example:
        >>> clips = probe_clips(num_frames=8, height=32, width=32, per_direction=1)
        >>> len(clips), clips[0].frames.shape, clips[0].kind
        (16, (8, 32, 32, 3), 'pan')

    Pans come from ``synthetic.pan_video`` (the content moves, region: the whole frame), objects
    from ``synthetic.make_clip`` (region: the union of the object's coverage over frames). Speeds
    are drawn from ``synthetic.SPEED_RANGE``; clips are rendered square and resized to the model's size.
    """
    if bad := set(kinds) - set(KINDS):
        raise LocateError(f"kinds must be among {', '.join(KINDS)}, got {', '.join(sorted(bad))}")
    side = max(height, width)
    rng = np.random.default_rng(seed)
    clips = []
    for kind in kinds:
        for index, name in enumerate(DIRECTIONS):
            for _ in range(per_direction):
                if kind == "pan":
                    speed = rng.uniform(*SPEED_RANGE) * side / 32.0
                    clip = pan_video(rng, direction=DIRECTIONS[name], speed=speed, size=side, n_frames=num_frames)
                    region = np.ones((side, side), np.float32)
                    start = np.array([0.5, 0.5])
                    end = start + (clip.tracks[0, -1] - clip.tracks[0, 0]) / side  # the scene moved this far
                else:
                    clip = make_clip(rng, size=side, n_frames=num_frames, kind="object", direction=name,
                                     describe_motion=False)
                    region = clip.masks.max(axis=0)  # (H, W): the swept path
                    start, end = (clip.tracks[0, [0, -1]] + 0.5) / side  # pixel centres -> fractions
                frames = to_uint8(clip.frames)
                if (side, side) != (height, width):
                    frames = resize_video(frames, height, width)
                    region = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)
                clips.append(ProbeClip(frames, index, kind, region.astype(np.float32), start, end))
    return clips


def correspondence_error(m: torch.Tensor, start: np.ndarray, end: np.ndarray) -> float:
    """How far off the paper's motion-correspondence heatmap is: the last frame's position most similar
    (cosine, ``features.cosine_map``) to frame 0's MOFT at ``start``, against the truth ``end``.

    Example:
        >>> g = torch.randn(16, 12, 12, generator=torch.Generator().manual_seed(0))  # (C, H, W) a texture
        >>> x = torch.stack([g.roll(t, dims=-1) for t in range(6)])[None]  # moving right 1 cell a frame
        >>> m = remove_content_correlation(x)[0]                          # (F, C, H, W) MOFT
        >>> correspondence_error(m, np.array([3.5, 6.5]) / 12, np.array([8.5, 6.5]) / 12)
        0.0

    Args:
        m: ``(F, C, h, w)`` MOFT of one clip.
        start, end: ``(x, y)`` fractions of the frame.

    Returns:
        The distance in fractions of the frame.
    """
    f, c, h, w = m.shape
    col = int(np.clip(np.floor(start[0] * w), 0, w - 1))
    row = int(np.clip(np.floor(start[1] * h), 0, h - 1))
    sim = cosine_map(m, (row, col))[-1]  # (h, w)
    r, cc = divmod(int(sim.argmax()), w)
    return float(np.hypot((cc + 0.5) / w - end[0], (r + 0.5) / h - end[1]))


def candidate_sites(net: torch.nn.Module) -> list[str]:
    """Every block output and temporal module ``capture_sites`` names (U-Net blocks, DiT blocks)."""
    named = capture_sites(net)
    return list(dict.fromkeys(named["blocks"] + named["temporal"]))


def parse_list(text: str, cast, name: str) -> list:
    """``"100,200"`` -> ``[100, 200]``; a clear ``LocateError`` naming the option otherwise.

    Example:
        >>> parse_list("0.01, 0.04", float, "--fractions")
        [0.01, 0.04]
    """
    try:
        values = [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise LocateError(f"{name}: expected a comma-separated list, got {text!r}") from None
    if not values:
        raise LocateError(f"{name}: empty list")
    return values


@dataclass
class LocateReport:
    """Accuracies over sites x timesteps and the recommended (site, timestep, fraction).

    Attributes:
        sites: in forward order; ``timesteps``, ``fractions`` as measured.
        accuracy: ``{"moft": (S, T), "raw": (S, T), "top": {fraction: (S, T)},
            "moft_by_kind": {kind: (S, T)}}`` cross-validated direction accuracies.
        recommendation: ``site``, ``timestep``, ``fraction`` and their accuracies.
        meta: model, architecture, clips, folds, forwards, seconds, seed.
    """

    sites: list[str]
    timesteps: list[int]
    fractions: list[float]
    accuracy: dict
    recommendation: dict
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        def rows(a):
            return [[round(float(v), 4) for v in row] for row in np.asarray(a)]

        acc = {"moft": rows(self.accuracy["moft"]), "raw": rows(self.accuracy["raw"]),
               "top": {str(f): rows(a) for f, a in self.accuracy["top"].items()},
               "moft_by_kind": {k: rows(a) for k, a in self.accuracy["moft_by_kind"].items()},
               "correspondence": rows(self.accuracy["correspondence"])}
        return {**self.meta, "sites": self.sites, "timesteps": self.timesteps, "fractions": self.fractions,
                "chance": CHANCE, "accuracy": acc, "recommendation": self.recommendation}

    def cell(self, site: str, timestep: int) -> dict:
        """The accuracies at one (site, timestep)."""
        i, j = self.sites.index(site), self.timesteps.index(timestep)
        return {"moft": float(self.accuracy["moft"][i, j]), "raw": float(self.accuracy["raw"][i, j]),
                "correspondence": float(self.accuracy["correspondence"][i, j]),
                **{f"top_{f}": float(a[i, j]) for f, a in self.accuracy["top"].items()}}

    def markdown(self) -> str:
        m, rec = self.meta, self.recommendation
        t_rec = rec["timestep"]
        head = "| site | " + " | ".join(f"t={t}" for t in self.timesteps) + " |"
        lines = [
            f"## moft locate: {m['model']} ({m['architecture']})", "",
            f"Direction decoding accuracy (8 directions, chance {CHANCE:.1%}) on {m['clips']['total']} held-out "
            f"synthetic clips ({', '.join(m['clips']['kinds'])}; {m['clips']['per_direction']} per direction and "
            f"kind; {m['clips']['frames']} frames x {m['clips']['height']}x{m['clips']['width']} px), "
            f"{m['folds']}-fold cross-validated logistic regression on frame 0's region-mean feature"
            f"{'; each clip animated from its own frame 0 (the image)' if m.get('image_to_video') else ''}. "
            "Each cell: **MOFT** (content removed) / raw.", "",
            head, "|---|" + "---|" * len(self.timesteps)]
        for i, s in enumerate(self.sites):
            cells = [f"{self.accuracy['moft'][i, j]:.2f} / {self.accuracy['raw'][i, j]:.2f}"
                     for j in range(len(self.timesteps))]
            cells = [f"**{c}**" if (s, t) == (rec["site"], t_rec) else c for c, t in zip(cells, self.timesteps)]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        if self.fractions:
            j = self.timesteps.index(t_rec)
            lines += ["", f"Concentration at t={t_rec}: MOFT accuracy from the top fraction of channels "
                      "(the paper's ranking: |PC1 loading| on left/right and up/down pans of each training fold), "
                      "MOFT accuracy by kind, and the correspondence score: the share of clips whose frame-0 MOFT "
                      "at a known point (a pan's centre, an object's centre) is most similar, in the last frame, "
                      f"within {FLOW_TOLERANCE:g} of the frame of where that content went (the paper's heatmaps).", "",
                      "| site | all | " + " | ".join(f"top {f:.0%}" for f in self.fractions)
                      + " | pans | objects | correspondence |",
                      "|---|---|" + "---|" * (len(self.fractions) + 3)]
            for i, s in enumerate(self.sites):
                tops = " | ".join(f"{self.accuracy['top'][f][i, j]:.2f}" for f in self.fractions)
                kinds = " | ".join(f"{self.accuracy['moft_by_kind'][k][i, j]:.2f}" if k in self.accuracy["moft_by_kind"]
                                   else "-" for k in KINDS)
                lines.append(f"| {s} | {self.accuracy['moft'][i, j]:.2f} | {tops} | {kinds} "
                             f"| {self.accuracy['correspondence'][i, j]:.2f} |")
        frac = f", top {rec['fraction']:.0%} of channels ({rec['top_accuracy']:.2f})" if rec["fraction"] else ""
        lines += ["", f"**Recommended:** site `{rec['site']}`, timestep {rec['timestep']}{frac}: MOFT accuracy "
                  f"{rec['moft_accuracy']:.2f} ± {rec['standard_error']:.2f} (binomial standard error), "
                  f"raw {rec['raw_accuracy']:.2f}."]
        if rec["near_best"]:
            lines.append("Within one standard error of it: "
                         + ", ".join(f"`{s}` t={t} ({a:.2f})" for s, t, a in rec["near_best"]) + ".")
        if (d := rec.get("default_site")) and d.get("site") in self.sites:
            lines.append(f"The architecture's default site `{d['site']}`: best MOFT accuracy {d['moft_accuracy']:.2f} "
                         f"at t={d['timestep']} (raw {d['raw_accuracy']:.2f}).")
        lines += ["", f"Cost: {m['forwards']} denoiser forwards (clips x timesteps), {m['seconds']['forwards']:.0f} s; "
                  f"classifiers {m['seconds']['classifiers']:.0f} s."]
        return "\n".join(lines) + "\n"

    def figure(self, path: str | Path) -> Path:
        """PNG heatmaps over sites x timesteps (MOFT, raw, top fraction) with the chosen cell boxed."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        rec = self.recommendation
        panels = [("MOFT (content removed)", self.accuracy["moft"]), ("raw features", self.accuracy["raw"])]
        if rec["fraction"]:
            panels.append((f"MOFT, top {rec['fraction']:.0%} channels", self.accuracy["top"][rec["fraction"]]))
        panels.append((f"correspondence (within {FLOW_TOLERANCE:g})", self.accuracy["correspondence"]))
        s, t = len(self.sites), len(self.timesteps)
        fig = Figure(figsize=(3.2 + 1.0 * t * len(panels), 1.6 + 0.32 * s), layout="constrained")
        axes = fig.subplots(1, len(panels), sharey=True)
        ci, cj = self.sites.index(rec["site"]), self.timesteps.index(rec["timestep"])
        for ax, (title, acc) in zip(np.atleast_1d(axes), panels):
            im = ax.imshow(np.asarray(acc), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
            for i in range(s):
                for j in range(t):
                    v = float(acc[i, j])
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if v > 0.6 else "white")
            ax.add_patch(Rectangle((cj - 0.5, ci - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
            ax.set_xticks(range(t), [str(v) for v in self.timesteps])
            ax.set_xlabel("timestep")
            ax.set_title(title, fontsize=9)
        first = np.atleast_1d(axes)[0]
        first.set_yticks(range(s), self.sites, fontsize=7)
        bar = fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.9)
        bar.set_label(f"accuracy (chance {CHANCE:.3f})\n/ correspondence hits", fontsize=7)  # fits 4 sites too
        fig.suptitle(f"moft locate: {self.meta['model']}: chosen {rec['site']} @ t={rec['timestep']}", fontsize=10)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        return atomic_write_bytes(Path(path), buf.getvalue())

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.json), and ``.md`` and ``.png`` beside it, each atomically."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        atomic_write_text(path.with_suffix(".md"), self.markdown())
        self.figure(path.with_suffix(".png"))
        return path


@dataclass
class LocatePlan:
    """The checked settings of a ``locate`` run (``plan_locate``): what every later step reads."""

    timesteps: list[int]
    fractions: list[float]
    kinds: tuple[str, ...]
    clips_per_direction: int
    folds: int


def plan_locate(*, timesteps=TIMESTEPS, fractions=FRACTIONS, kinds=KINDS, clips_per_direction: int = 8,
                max_forwards: int | None = None, folds: int = 5, train_timesteps: int | None = None) -> LocatePlan:
    """Check ``locate``'s settings without a model (the command line runs this before loading one).

    Example:
        >>> plan_locate(timesteps=(100, 200), max_forwards=100).clips_per_direction  # 100 // (16 x 2) clips
        3
        >>> plan_locate(timesteps=(100, 100))
        Traceback (most recent call last):
            ...
        moft.front.locate.LocateError: timesteps must be distinct integers >= 0, got [100, 100]

    Args:
        timesteps, fractions, kinds, clips_per_direction, max_forwards, folds: as ``locate``.
        train_timesteps: the scheduler's ``num_train_timesteps`` when known: timesteps must be below it.

    Raises:
        LocateError: one line naming the setting.
    """
    if bad := set(kinds) - set(KINDS):
        raise LocateError(f"kinds must be among {', '.join(KINDS)}, got {', '.join(sorted(bad))}")
    timesteps = [int(t) for t in timesteps]
    top = f"in [0, {train_timesteps})" if train_timesteps is not None else ">= 0"
    if (not timesteps or any(t < 0 or (train_timesteps is not None and t >= train_timesteps) for t in timesteps)
            or len(set(timesteps)) != len(timesteps)):
        raise LocateError(f"timesteps must be distinct integers {top}, got {timesteps}")
    fractions = [float(f) for f in fractions]
    if any(not 0 < f <= 1 for f in fractions):
        raise LocateError(f"fractions must be in (0, 1], got {fractions}")
    if fractions and "pan" not in kinds:
        raise LocateError("the channel ranking (fractions) needs pans among the kinds")
    per_class = 8 * len(kinds)
    if max_forwards is not None:
        fit = max_forwards // (per_class * len(timesteps))
        if fit < 2:
            raise LocateError(f"a budget of {max_forwards} forwards allows {fit} clip(s) per direction and kind at "
                              f"{len(timesteps)} timestep(s); at least 2 are needed "
                              f"({2 * per_class * len(timesteps)} forwards)")
        clips_per_direction = min(clips_per_direction, fit)
    if clips_per_direction < 2:
        raise LocateError(f"clips_per_direction must be at least 2 (for cross-validation), got {clips_per_direction}")
    return LocatePlan(timesteps, fractions, tuple(kinds), clips_per_direction, min(folds, clips_per_direction))


@torch.no_grad()
def locate(
    pipe,
    *,
    sites: list[str] | None = None,
    timesteps=TIMESTEPS,
    fractions=FRACTIONS,
    clips_per_direction: int = 8,
    kinds=KINDS,
    max_forwards: int | None = None,
    folds: int = 5,
    crop: float = 0.25,
    seed: int = 1234,
    model_name: str = "",
    progress=None,
) -> LocateReport:
    """Measure where motion is decodable in ``pipe``'s denoiser: every site x timestep.

    Example:
        >>> rep = locate(pipe, sites=["up_blocks.1", "mid_block"], timesteps=(200,))  # doctest: +SKIP

    Args:
        pipe: a diffusers video pipeline of a supported architecture.
        sites: module paths (default: ``candidate_sites``: every block output and temporal module).
        timesteps: where features are taken (clips noised to each; one forward per clip and timestep).
        fractions: shares of channels for the concentration measure (paper: 4%); empty skips it.
        clips_per_direction: clips per direction and kind (8 directions x ``len(kinds)`` kinds).
        kinds: ``"pan"`` and/or ``"object"``; the channel ranking needs pans.
        max_forwards: budget of denoiser forwards; fewer clips per direction when
            ``8 x len(kinds) x clips_per_direction x len(timesteps)`` exceeds it.
        folds: cross-validation folds (at most ``clips_per_direction``; stratified by direction and kind).
        crop: centre crop of the pans' feature maps used for the channel ranking (as ``fit_channels``).
        seed: clips, noise and folds (the default is not ``fit_channels``' seed: held-out clips).
        model_name: recorded in the report.
        progress: optional ``progress(done, total)`` per forward.
    """
    net = denoiser(pipe)
    train_timesteps = int(getattr(pipe.scheduler.config, "num_train_timesteps", 1000))
    plan = plan_locate(timesteps=timesteps, fractions=fractions, kinds=kinds, clips_per_direction=clips_per_direction,
                       max_forwards=max_forwards, folds=folds, train_timesteps=train_timesteps)
    sites = _checked_sites(net, sites)
    f, h, w = default_video_size(pipe)
    clips = probe_clips(num_frames=f, height=h, width=w, per_direction=plan.clips_per_direction, kinds=plan.kinds,
                        seed=seed)
    start = time.perf_counter()
    summaries, fired = _clip_summaries(pipe, clips, sites, plan, crop=crop, seed=seed, progress=progress)
    forward_seconds = time.perf_counter() - start
    sites = fired + [s for s in sites if s not in fired]  # forward order

    start = time.perf_counter()
    acc = _accuracies(summaries, clips, sites, plan, seed)
    classifier_seconds = time.perf_counter() - start

    rec = _recommend(sites, plan.timesteps, plan.fractions, acc, len(clips))
    default = default_site(net)  # the architecture's (a mid-depth block for DiTs)
    if default in sites:
        i = sites.index(default)
        j = int(np.argmax(acc["moft"][i]))
        rec["default_site"] = {"site": default, "timestep": plan.timesteps[j],
                               "moft_accuracy": float(acc["moft"][i, j]), "raw_accuracy": float(acc["raw"][i, j])}
    meta = {
        "model": model_name, "architecture": architecture_of(net).name,
        "clips": {"per_direction": plan.clips_per_direction, "kinds": list(plan.kinds), "total": len(clips),
                  "frames": f, "height": h, "width": w, "seed": seed},
        "folds": plan.folds, "crop": crop, "forwards": len(clips) * len(plan.timesteps), **placement(pipe),
        "seconds": {"forwards": round(forward_seconds, 1), "classifiers": round(classifier_seconds, 1)},
        "sample": "frame 0's feature averaged over the clip's motion region, on the latent grid",
        "image_to_video": requires_image(pipe),  # then each clip is conditioned on its own frame 0 as the image
        "correspondence": f"share of clips whose frame-0 MOFT at a known point is most similar (cosine, all channels) "
                          f"within {FLOW_TOLERANCE} of the frame of where that content is in the last frame",
        "classifier": "StandardScaler + LogisticRegression (multinomial), stratified k-fold over clips",
    }
    return LocateReport(sites, plan.timesteps, plan.fractions, acc, rec, meta)


def _checked_sites(net: torch.nn.Module, sites: list[str] | None) -> list[str]:
    """The sites to measure (default: ``candidate_sites``), each checked to exist before any work."""
    sites = list(dict.fromkeys(sites or candidate_sites(net)))
    if not sites:
        raise LocateError(f"no candidate sites found in {type(net).__name__}; pass sites")
    capture(net, sites)  # CaptureError names a missing site
    return sites


def _axis_of() -> dict[int, tuple[str, float]]:
    """Direction index -> (axis, sign) for the pans each axis' channels are ranked on (``AXIS_PANS``)."""
    names = list(DIRECTIONS)
    return {names.index(n): (axis, 1.0 if k == 0 else -1.0) for axis, pair in AXIS_PANS.items()
            for k, n in enumerate(pair)}


@dataclass
class _Summaries:
    """Per-clip summaries of each (site, timestep), all that the classifiers need."""

    raw: dict = field(default_factory=dict)  # (site, t) -> (N, C) frame 0's region-mean feature
    moft: dict = field(default_factory=dict)  # (site, t) -> (N, C) the same, content removed
    centre: dict = field(default_factory=dict)  # (site, t) -> {clip: (P, C)} axis pans' centre-crop MOFT of frame 0
    errors: dict = field(default_factory=dict)  # (site, t) -> (N,) correspondence errors, fractions of the frame


def _clip_summaries(pipe, clips: list[ProbeClip], sites: list[str], plan: LocatePlan, *, crop: float, seed: int,
                    progress=None) -> tuple[_Summaries, list[str]]:
    """One forward per clip and timestep, keeping only per-clip summaries of each site (on the CPU).

    Returns the summaries and the sites in the order they fired.
    """
    text = {"encoder_hidden_states": encode_prompt(pipe, "")}
    latents = [encode_video(pipe, c.frames) for c in clips]  # [(1, F, C, h, w)]
    _, height, width = clips[0].frames.shape[:3]
    # an image-to-video model sees each clip as the animation of its own frame 0 (as extract and inversion do)
    conds = [dict(text, **(clip_conditioning(pipe, c.frames, height, width) or {})) for c in clips]
    grid = tuple(latents[0].shape[-2:])
    regions = [torch.nn.functional.interpolate(torch.from_numpy(c.region)[None, None], size=grid, mode="area")[0, 0]
               for c in clips]  # [(h, w)]
    axis_of = _axis_of()
    out, order = _Summaries(), None
    total, done = len(clips) * len(plan.timesteps), 0
    for t in plan.timesteps:
        rows = {s: ([], [], []) for s in sites}
        for n, (clip, z0) in enumerate(zip(clips, latents)):
            feats = noised_features(pipe, z0, conds[n], timestep=t, seed=seed + n, sites=sites)
            order = order or [s for s in feats if s in sites]  # the order the sites fired in
            for s in sites:
                x = resize(feats[s].float(), grid)  # (1, F, C, h, w) on the latent grid
                m = remove_content_correlation(x)[0]  # (F, C, h, w) MOFT
                region = regions[n].to(x.device)
                rows[s][0].append(region_mean(x[0, 0], region).cpu())  # (C,)
                rows[s][1].append(region_mean(m[0], region).cpu())  # (C,)
                rows[s][2].append(correspondence_error(m, clip.start, clip.end))
                if clip.kind == "pan" and clip.direction in axis_of and plan.fractions:
                    m0 = centre_crop(m[0], crop)  # (C, h', w')
                    out.centre.setdefault((s, t), {})[n] = rearrange(m0, "c h w -> (h w) c").cpu()
            done += 1
            if progress is not None:
                progress(done, total)
        for s in sites:
            out.raw[s, t] = torch.stack(rows[s][0]).numpy()
            out.moft[s, t] = torch.stack(rows[s][1]).numpy()
            out.errors[s, t] = np.asarray(rows[s][2])
    return out, order


def _accuracies(summaries: _Summaries, clips: list[ProbeClip], sites: list[str], plan: LocatePlan,
                seed: int) -> dict:
    """Cross-validated direction accuracies (raw, MOFT, by kind, top fractions) and correspondence hits,
    each ``(S, T)`` over sites x timesteps."""
    from sklearn.model_selection import StratifiedKFold

    y = np.array([c.direction for c in clips])
    kind_of = np.array([c.kind for c in clips])
    strata = np.array([f"{c.direction}:{c.kind}" for c in clips])
    splits = list(StratifiedKFold(plan.folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), strata))
    axis_of = _axis_of()
    shape = (len(sites), len(plan.timesteps))
    acc = {"moft": np.zeros(shape), "raw": np.zeros(shape), "top": {fr: np.zeros(shape) for fr in plan.fractions},
           "moft_by_kind": {k: np.zeros(shape) for k in plan.kinds}, "correspondence": np.zeros(shape)}
    for i, s in enumerate(sites):
        for j, t in enumerate(plan.timesteps):
            acc["raw"][i, j] = (_cv_predict(summaries.raw[s, t], y, splits) == y).mean()
            acc["correspondence"][i, j] = (summaries.errors[s, t] <= FLOW_TOLERANCE).mean()
            pred = _cv_predict(summaries.moft[s, t], y, splits)
            acc["moft"][i, j] = (pred == y).mean()
            for k in plan.kinds:
                acc["moft_by_kind"][k][i, j] = (pred == y)[kind_of == k].mean()
            if plan.fractions:
                loadings = [_fold_loadings(summaries.centre[s, t], train, y, axis_of) for train, _ in splits]
                for fr in plan.fractions:
                    columns = [top_channels(lo, fr).numpy() for lo in loadings]
                    acc["top"][fr][i, j] = (_cv_predict(summaries.moft[s, t], y, splits, columns) == y).mean()
    return acc


def _cv_predict(x: np.ndarray, y: np.ndarray, splits, columns=None) -> np.ndarray:
    """Cross-validated predictions ``(N,)`` of a standardised logistic regression on ``x (N, D)``;
    ``columns[k]`` restricts fold ``k`` to those features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.empty_like(y)
    for k, (train, test) in enumerate(splits):
        cols = slice(None) if columns is None else columns[k]
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x[train][:, cols], y[train])
        pred[test] = model.predict(x[test][:, cols])
    return pred


def _fold_loadings(centre: dict[int, torch.Tensor], train: np.ndarray, y: np.ndarray, axis_of: dict) -> dict:
    """Per-axis PC1 loadings from the training fold's axis pans (``channels.axis_loadings``)."""
    out = {}
    for axis in AXIS_PANS:
        picked = [n for n in train if n in centre and axis_of[y[n]][0] == axis]
        if not picked:
            raise LocateError(f"no {axis} pans in a training fold; raise clips_per_direction")
        samples = torch.cat([centre[n] for n in picked])  # (N*P, C)
        signs = torch.cat([torch.full((centre[n].shape[0],), axis_of[y[n]][1]) for n in picked])
        out[axis] = axis_loadings(samples, signs, "pca")[0]
    return out


def _recommend(sites, timesteps, fractions, acc, num_clips: int) -> dict:
    """The cell with the best MOFT accuracy (ties: best top-fraction accuracy, then the larger
    content-removal gain), and there the smallest fraction reaching the best top-fraction accuracy.
    ``near_best`` lists the cells within one binomial standard error of the best (not told apart
    by this many clips)."""
    best, key = None, None
    for i in range(len(sites)):
        for j in range(len(timesteps)):
            top = max((acc["top"][fr][i, j] for fr in fractions), default=0.0)
            k = (acc["moft"][i, j], top, acc["moft"][i, j] - acc["raw"][i, j])
            if key is None or k > key:
                best, key = (i, j), k
    i, j = best
    fraction, top = None, None
    if fractions:
        top = max(acc["top"][fr][i, j] for fr in fractions)
        fraction = min(fr for fr in fractions if acc["top"][fr][i, j] == top)
    p = float(acc["moft"][i, j])
    se = float(np.sqrt(p * (1 - p) / num_clips))
    near = [[sites[a], timesteps[b], round(float(acc["moft"][a, b]), 4)] for a in range(len(sites))
            for b in range(len(timesteps)) if (a, b) != (i, j) and acc["moft"][a, b] >= p - se]
    return {"site": sites[i], "timestep": timesteps[j], "fraction": fraction,
            "moft_accuracy": p, "raw_accuracy": float(acc["raw"][i, j]),
            "top_accuracy": None if top is None else float(top), "standard_error": round(se, 4), "near_best": near}


def write_defaults(folder: str | Path, report: LocateReport, report_path: str | Path | None = None) -> list[str]:
    """Put the recommended site into a model folder's ``moft.json`` (``"site"``, read by ``extract``,
    ``fit_channels`` and ``control``), with the whole recommendation under ``"locate"``.

    Example:
        >>> notes = write_defaults("my-model", rep, "locate.json")   # doctest: +SKIP

    Returns:
        Notes for the user, e.g. that the folder's motion channels were fitted at another site.

    Raises:
        LocateError: not a pipeline folder, or its ``moft.json`` is not a JSON object.
    """
    folder = Path(folder)
    check_defaults_folder(folder)
    path = folder / DEFAULTS_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    rec = report.recommendation
    data["site"] = rec["site"]
    data["locate"] = {k: rec[k] for k in ("site", "timestep", "fraction", "moft_accuracy", "raw_accuracy",
                                          "top_accuracy")}
    if report_path is not None:
        data["locate"]["report"] = str(report_path)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    notes = []
    channels = folder / CHANNELS_FILE
    if channels.is_file():
        fitted = MotionChannels.load(channels).meta.get("site")
        if fitted != rec["site"]:
            frac = rec["fraction"] if rec["fraction"] is not None else 0.04
            notes.append(f"{channels} was fitted at {fitted}; refit it at {rec['site']}: moft fit-channels --model "
                         f"{folder} --out {channels} --timestep {rec['timestep']} --fraction {frac}")
    return notes


def model_folder(model: str | None) -> Path | None:
    """The local folder ``load_pipeline(model)`` reads (``None`` for a hub id); ``ModelError`` for a bad name.

    Example:
        >>> model_folder("moft-tiny").name
        'moft-tiny'
    """
    path = Path(resolve_model(model))
    return path if path.is_dir() else None


def folder_train_timesteps(folder: str | Path | None) -> int | None:
    """The scheduler's ``num_train_timesteps`` from a pipeline folder's config, read without loading the model
    (``None`` when there is no such folder or config; the loaded scheduler is checked again).

    Example:
        >>> folder_train_timesteps(model_folder("moft-tiny"))
        1000
    """
    if folder is None:
        return None
    try:
        config = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text())
        return int(config.get("num_train_timesteps", 1000))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def check_defaults_folder(folder: str | Path) -> None:
    """Raise ``LocateError`` unless ``folder`` is a pipeline folder whose ``moft.json`` (if any) is a JSON object."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise LocateError(f"{folder}: not a diffusers pipeline folder (no model_index.json)")
    path = folder / DEFAULTS_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise LocateError(f"{path}: not valid JSON") from None
        if not isinstance(data, dict):
            raise LocateError(f"{path}: not a JSON object")

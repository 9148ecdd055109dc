"""Motion channels: fit them by PCA on synthetic pans (paper §3.2), save, load, check.

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()                                   # the shipped model
    >>> ch = moft.fit_channels(pipe, fraction=0.04, method="noise")   # horizontal + vertical
    >>> len(ch.horizontal), len(ch.vertical)   # top 4% of 64 channels per axis, by |PC1 loading|
    (3, 3)
    >>> path = ch.save("channels.safetensors")  # + channels.json beside it
    >>> moft.MotionChannels.load(path, expect_channels=64).digest() == ch.digest()
    True

Procedure (official notebook, generalised): render whole-frame pans of still scenes (left/right for
the horizontal channels, up/down for the vertical ones), take the denoiser's features by DDIM
inversion (or by noising to a timestep), remove content correlation, take the centre crop of frame
0 as samples, run PCA, rank channels by the absolute loading of the first component and keep the
top ``fraction``. The same data also give each channel's *baseline* (its mean curve over frames
across all pans: what every video shares, e.g. frame-position effects) and *response* (a
least-squares fit of the rest against the content's displacement from its mean position). Target
synthesis uses both to turn a requested trajectory into channel curves (see ``targets.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import save

from ..io.jsonio import strict_json
from ..io.outputs import output_set
from ..io.synthetic import pan_video
from ..io.video import resize_video
from ..models.adapters import architecture_of
from ..models.pipeline import (  # noqa: F401  (default_video_size re-exported)
    CHANNELS_FILE, ModelError, default_video_size, denoiser, latent_time_grid, pipeline_site, resolve_model,
    vae_scale)
from .features import remove_content_correlation, resize
from .inversion import clip_conditioning, reference_features


class ChannelsError(ValueError):
    """A channel file that is missing, malformed or fitted on another feature space."""


PAN_DIRECTIONS = {"horizontal": ((-1.0, 0.0), (1.0, 0.0)), "vertical": ((0.0, -1.0), (0.0, 1.0))}


@dataclass
class MotionChannels:
    """Motion channels of one model at one capture site.

    Attributes:
        horizontal: ``(k,)`` channel indices ranked by |PC1 loading| on left/right pans.
        vertical: ``(k,)`` the same on up/down pans.
        loadings: ``{"horizontal": (C,), "vertical": (C,)}`` PC1 loadings.
        response: ``(C, 2)`` MOFT value per unit of content displacement (x, y), in fractions of
            the frame, fitted over all pan videos.
        response_r2: ``(C,)`` R^2 of that linear fit per channel (after the baseline).
        baseline: ``(F, C)`` the direction-independent part of the region-mean MOFT over frames
            (mean over all fitting pans, which come in opposite pairs).
        meta: model, site, timestep, fraction, explained variance, source videos.
    """

    horizontal: torch.Tensor
    vertical: torch.Tensor
    loadings: dict[str, torch.Tensor]
    response: torch.Tensor
    response_r2: torch.Tensor
    baseline: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return int(self.response.shape[0])

    @property
    def indices(self) -> torch.Tensor:
        """Union of horizontal and vertical channels, in rank order, without repeats: ``(d,)``."""
        seen: list[int] = []
        for i in torch.stack([self.horizontal, self.vertical], 1).flatten().tolist():
            if i not in seen:
                seen.append(i)
        return torch.tensor(seen, dtype=torch.long)

    def top(self, fraction: float) -> torch.Tensor:
        """Union of the top ``fraction`` of channels by each PC1 loading (for ablations): ``(d,)``."""
        return top_channels(self.loadings, fraction)

    def check(self, num_channels: int, site: str | None = None) -> None:
        """Raise ``ChannelsError`` unless these channels fit features with ``num_channels`` channels:
        the same width, and 1-D, non-empty, equally long index lists within ``0..num_channels - 1``."""
        for name, idx in (("horizontal", self.horizontal), ("vertical", self.vertical)):
            if idx.ndim != 1 or idx.numel() == 0:
                raise ChannelsError(f"{name} channel indices must be a non-empty list, got shape {tuple(idx.shape)}")
            if int(idx.min()) < 0 or int(idx.max()) >= self.num_channels:
                raise ChannelsError(f"{name} channel indices must lie in 0..{self.num_channels - 1}, "
                                    f"got {int(idx.min())}..{int(idx.max())}")
        if len(self.horizontal) != len(self.vertical):
            raise ChannelsError(f"{len(self.horizontal)} horizontal but {len(self.vertical)} vertical channels")
        if num_channels != self.num_channels:
            raise ChannelsError(
                f"channel file was fitted on {self.num_channels}-channel features "
                f"({self.meta.get('site', '?')}); this model's {site or 'site'} has {num_channels}")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"horizontal": self.horizontal, "vertical": self.vertical,
                "loadings_horizontal": self.loadings["horizontal"], "loadings_vertical": self.loadings["vertical"],
                "response": self.response, "response_r2": self.response_r2,
                **({"baseline": self.baseline} if self.baseline is not None else {})}

    def digest(self) -> str:
        """SHA-256 of the tensors (recorded in run reports)."""
        h = hashlib.sha256()
        for k, v in sorted(self.tensors().items()):
            h.update(k.encode())
            h.update(v.contiguous().numpy().tobytes())
        return h.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors, metadata inside) and ``path.json`` (the same metadata), both or neither.

        The metadata is strict JSON: a non-finite figure (e.g. an explained-variance ratio of a degenerate fit)
        is written as ``null`` with a ``null_because`` note (``moft.io.jsonio.strict_json``).
        """
        path = Path(path)
        meta = strict_json(self.meta, sort_keys=True)
        data = save({k: v.contiguous() for k, v in self.tensors().items()}, metadata={"moft_channels": meta.rstrip()})
        with output_set() as stage:
            stage(path).write_bytes(data)
            stage(path.with_suffix(".json")).write_text(meta)
        return path

    @classmethod
    def load(cls, path: str | Path, expect_channels: int | None = None) -> "MotionChannels":
        """Read a channel file; ``expect_channels`` checks it against a model's feature width."""
        path = Path(path)
        if not path.is_file():
            raise ChannelsError(f"{path}: no such channel file")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {})["moft_channels"])
                t = {k: fh.get_tensor(k) for k in fh.keys()}
            ch = cls(t["horizontal"].long(), t["vertical"].long(),
                     {"horizontal": t["loadings_horizontal"], "vertical": t["loadings_vertical"]},
                     t["response"].float(), t["response_r2"].float(), t.get("baseline"), meta)
        except Exception as exc:  # safetensors raises several types for a bad file
            raise ChannelsError(f"{path}: not a moft channel file ({type(exc).__name__})") from exc
        if ch.response.ndim != 2 or ch.response.shape[1] != 2:
            raise ChannelsError(f"{path}: malformed response tensor {tuple(ch.response.shape)}")
        try:
            ch.check(ch.num_channels if expect_channels is None else expect_channels)
        except ChannelsError as exc:
            raise ChannelsError(f"{path}: {exc}") from None
        return ch


def default_channels(model: str | os.PathLike | None = None):
    """The motion channels shipped inside a model folder (``motion_channels.safetensors``), or None.

    Example:
        >>> ch = default_channels()              # the shipped model's fitted channels
    """
    try:
        folder = Path(resolve_model(model))
    except ModelError:
        return None
    path = folder / CHANNELS_FILE
    return MotionChannels.load(path) if path.is_file() else None


def pan_videos(*, size: tuple[int, int], num_frames: int, speed: float, scenes: int, seed: int,
               images: list[np.ndarray] | None = None):
    """Whole-frame pans for fitting: yields ``(frames (F, H, W, 3) uint8, direction (2,), axis)``.

    ``speed`` is a fraction of the frame per frame. Scenes are random textured still pictures
    (``synthetic.pan_video``) unless ``images`` are given; those are panned by sub-pixel crops.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    for axis, dirs in PAN_DIRECTIONS.items():
        for s in range(scenes):
            for d in dirs:
                if images:
                    frames = _pan_image(images[s % len(images)], d, speed, num_frames, h, w)
                else:
                    side = max(h, w)
                    clip = pan_video(np.random.default_rng(seed + 1000 * s), direction=d, speed=speed * side,
                                     size=side, n_frames=num_frames)
                    frames = resize_video((clip.frames * 255).round().astype(np.uint8), h, w)
                # a little per-frame noise, as the official notebook adds
                noisy = frames.astype(np.float32) + rng.normal(0, 2.0, frames.shape)
                yield np.clip(noisy, 0, 255).astype(np.uint8), np.asarray(d), axis


def _pan_image(image: np.ndarray, d, speed: float, num_frames: int, h: int, w: int) -> np.ndarray:
    """Pan a still image: a window of 70% of it moves so the content moves along ``d``."""
    ih, iw = image.shape[:2]
    ch, cw = int(ih * 0.7), int(iw * 0.7)
    travel = np.array([speed * cw, speed * ch]) * (num_frames - 1)
    frames = []
    for f in range(num_frames):
        off = np.array([(iw - cw) / 2, (ih - ch) / 2]) - np.asarray(d) * (f * speed * np.array([cw, ch]) - travel / 2)
        m = np.float32([[cw / w, 0, off[0]], [0, ch / h, off[1]]])
        frames.append(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


@torch.no_grad()
def fit_channels(
    pipe,
    *,
    fraction: float = 0.04,
    timestep: int = 200,
    method: str = "inversion",
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    scenes: int = 4,
    speed: float = 0.04,
    site: str | None = None,
    rank: str = "pca",
    crop: float = 0.25,
    num_steps: int = 25,
    seed: int = 0,
    images: list[np.ndarray] | None = None,
    model_name: str = "",
    progress=None,
) -> MotionChannels:
    """Fit horizontal and vertical motion channels of ``pipe``'s denoiser.

    Example:
        >>> ch = fit_channels(pipe, fraction=0.04, method="noise", scenes=2)
        >>> ch.meta["k"], ch.meta["site"], ch.response.shape   # (C, 2): MOFT per unit of displacement
        (3, 'up_blocks.1', torch.Size([64, 2]))

    Args:
        pipe: a diffusers video pipeline.
        fraction: share of channels kept per axis (paper: top 4%).
        timestep: where features are taken: inversion up to the step nearest this timestep, or
            noising to it (official: inversion step 5 of 25, t = 200).
        method: ``"inversion"`` (DDIM inversion, as the paper) or ``"noise"`` (one noised forward).
        num_frames, height, width: video size (default: the shipped model's 8x32x32, else 16x512x512).
        scenes: still scenes per axis; each gives two pans (opposite directions).
        speed: pan speed, fraction of the frame per frame.
        site: capture site (default: the model folder's ``moft.json`` ``"site"``, else the
            architecture's ``up_blocks.1``).
        rank: how channels are ranked per axis: ``"pca"`` (the paper: |loading| on the first
            principal component of the pooled frame-0 samples) or ``"separation"`` (|d'|, the
            difference of the two opposite pans' channel means over their pooled standard deviation,
            i.e. how well each channel alone tells the two directions apart). ``loadings`` hold the
            PC1 loadings or the signed d' accordingly.
        crop: side of the centre crop used for PCA samples, as a fraction of the feature map
            (official: 16/64 = 0.25).
        num_steps: DDIM steps of the inversion schedule.
        seed: scenes and noise.
        images: optional still pictures ``(H, W, 3)`` uint8 to pan instead of synthetic scenes.
        model_name: recorded in the metadata.
        progress: optional callable ``progress(done, total)``.
    """
    _check_fit_settings(rank=rank, method=method, fraction=fraction, scenes=scenes)
    net = denoiser(pipe)
    arch = architecture_of(net)
    site = site or pipeline_site(pipe)
    default = default_video_size(pipe)
    num_frames, height, width = num_frames or default[0], height or default[1], width or default[2]

    videos = list(pan_videos(size=(height, width), num_frames=num_frames, speed=speed, scenes=scenes, seed=seed,
                             images=images))
    samples = {"horizontal": [], "vertical": []}
    signs = {"horizontal": [], "vertical": []}  # +1 / -1: which of the axis' two pans each sample is from
    curves, targets = [], []  # region-mean CR features (F, C) and displacements (F, 2)
    for n, (frames, d, axis) in enumerate(videos):
        # an image-to-video model reads each pan as the animation of its own frame 0 (as the targets read it)
        ref = reference_features(pipe, frames, timestep=timestep, num_steps=num_steps, site=site, mode=method,
                                 seed=seed + n, image_cond=clip_conditioning(pipe, frames, height, width))
        feats = ref.features
        x = remove_content_correlation(resize(feats.float(), (height // vae_scale(pipe), width // vae_scale(pipe))))
        centre = centre_crop(x[0], crop)  # (F, C, h, w)
        samples[axis].append(rearrange(centre[0], "c h w -> (h w) c"))  # (h*w, C)
        signs[axis].append(torch.full((samples[axis][-1].shape[0],), float(np.sign(d.sum()))))
        curves.append(centre.mean(dim=(-2, -1)))  # (F, C)
        pos = np.asarray(latent_time_grid(pipe, num_frames))[:, None] * speed * d[None, :]  # (F', 2) displacement
        targets.append(torch.from_numpy(pos - pos.mean(0)).float())
        if progress is not None:
            progress(n + 1, len(videos))

    num_c = curves[0].shape[1]
    k = max(1, round(fraction * num_c))
    ranked, loadings, explained = {}, {}, {}
    for axis, rows in samples.items():
        loadings[axis], explained[axis] = axis_loadings(torch.cat(rows), torch.cat(signs[axis]), rank)
        ranked[axis] = loadings[axis].abs().argsort(descending=True)[:k]

    sol, r2, baseline = _linear_response(curves, targets)
    meta = {
        "model": model_name, "architecture": arch.name, "site": site, "method": method,
        "timestep": ref.timestep, "inversion_step": ref.step, "num_steps": num_steps, "fraction": fraction,
        "k": k, "num_channels": num_c, "rank": rank, "explained_variance_ratio": explained,
        "frames": num_frames, "height": height, "width": width, "speed": speed,
        "source_videos": [f"{'image' if images else 'synthetic'} scene {s} pan {tuple(d.tolist())}"
                          for s, (_, d, _) in zip([i // 2 % scenes for i in range(len(videos))], videos)],
        "response_units": "MOFT value per fraction-of-frame displacement from the mean position",
        "baseline": "mean region-mean MOFT over frames of all fitting pans (direction-independent part)",
        "seed": seed,
    }
    return MotionChannels(ranked["horizontal"], ranked["vertical"], loadings, sol.T.contiguous(), r2, baseline, meta)


def _check_fit_settings(*, rank: str, method: str, fraction: float, scenes: int) -> None:
    """Raise ``ChannelsError`` (one line) on a ``fit_channels`` setting that cannot work, before any model work."""
    if rank not in ("pca", "separation"):
        raise ChannelsError(f"rank must be 'pca' or 'separation', got {rank!r}")
    if method not in ("inversion", "noise"):
        raise ChannelsError(f"method must be 'inversion' or 'noise', got {method!r}")
    if not 0 < fraction <= 1:
        raise ChannelsError(f"fraction must be in (0, 1], got {fraction}")
    if isinstance(scenes, bool) or not isinstance(scenes, int) or scenes < 1:
        raise ChannelsError(f"scenes must be an integer >= 1, got {scenes!r}")


def _linear_response(curves: list[torch.Tensor], targets: list[torch.Tensor]):
    """Least-squares MOFT response per unit of displacement: region-mean curves ``[(F, C)]`` against
    displacements ``[(F, 2)]``; returns ``(solution (2, C), r2 (C,), baseline (F, C))``."""
    baseline = torch.stack(curves).mean(0)  # (F, C): opposite pans cancel their motion part
    y = torch.cat([c - baseline for c in curves])  # (N*F, C)
    xd = torch.cat(targets)  # (N*F, 2)
    sol = torch.linalg.lstsq(xd, y).solution  # (2, C)
    pred = xd @ sol
    r2 = 1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return sol, r2, baseline


def centre_crop(x: torch.Tensor, crop: float) -> torch.Tensor:
    """The centre ``crop`` (fraction of each side, at least one cell) of ``(..., H, W)`` maps.

    Example:
        >>> centre_crop(torch.zeros(8, 64, 16, 16), 0.25).shape
        torch.Size([8, 64, 4, 4])
    """
    hh, ww = x.shape[-2:]
    r0, r1 = int(hh * (0.5 - crop / 2)), max(int(hh * (0.5 + crop / 2)), int(hh * (0.5 - crop / 2)) + 1)
    c0, c1 = int(ww * (0.5 - crop / 2)), max(int(ww * (0.5 + crop / 2)), int(ww * (0.5 - crop / 2)) + 1)
    return x[..., r0:r1, c0:c1]


def axis_loadings(samples: torch.Tensor, signs: torch.Tensor, rank: str = "pca") -> tuple[torch.Tensor, list[float]]:
    """Per-channel loadings of one axis' pan samples, by which channels are ranked (``|loading|``).

    Example:
        >>> x = torch.randn(40, 6) * 0.1
        >>> x[:, 2] += torch.arange(40).remainder(2) * 4 - 2     # channel 2 splits the two pans
        >>> loading, explained = axis_loadings(x, torch.arange(40).remainder(2) * 2.0 - 1)
        >>> int(loading.abs().argmax())
        2

    Args:
        samples: ``(N, C)`` content-removed feature vectors of the axis' two opposite pans.
        signs: ``(N,)`` +1 / -1, which pan each sample is from (used by ``"separation"`` only).
        rank: ``"pca"`` (the paper: the first principal component) or ``"separation"`` (d').

    Returns:
        ``(C,)`` loadings and the PCA's explained variance ratios.
    """
    from sklearn.decomposition import PCA

    data = samples.numpy()  # (N, C)
    pca = PCA(n_components=min(4, data.shape[0], data.shape[1])).fit(data)
    explained = [float(v) for v in pca.explained_variance_ratio_]
    if rank == "pca":
        return torch.from_numpy(pca.components_[0]).float(), explained
    return separation(samples, signs), explained


def top_channels(loadings: dict[str, torch.Tensor], fraction: float) -> torch.Tensor:
    """Union of the top ``fraction`` of channels by each axis' ``|loading|``: ``(d,)``.

    Example:
        >>> top_channels({"horizontal": torch.tensor([0.1, -0.9, 0.2, 0.0]),
        ...               "vertical": torch.tensor([0.8, 0.1, 0.0, 0.3])}, 0.25).sort().values
        tensor([0, 1])
    """
    num = int(next(iter(loadings.values())).shape[0])
    k = max(1, round(fraction * num))
    best = [v.abs().argsort(descending=True)[:k] for v in loadings.values()]
    return torch.unique(torch.cat(best), sorted=False)


def separation(samples: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Signed d' per channel between two groups: ``(mean+ - mean-) / pooled std``.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.2, 5.0], [-1.0, 0.1], [-1.2, 4.9]])
        >>> separation(x, torch.tensor([1.0, 1.0, -1.0, -1.0]))[0] > 10
        tensor(True)

    Args:
        samples: ``(N, C)`` feature vectors.
        labels: ``(N,)`` +1 or -1, the group of each sample (both groups present).
    """
    pos, neg = samples[labels > 0], samples[labels < 0]  # (N+, C), (N-, C)
    if len(pos) < 2 or len(neg) < 2:
        raise ValueError("separation needs at least two samples in each group")
    pooled = ((pos.var(0) + neg.var(0)) / 2).clamp_min(1e-12).sqrt()  # (C,)
    return (pos.mean(0) - neg.mean(0)) / pooled

"""Control that keeps the rest: the unguided source's latents outside the moving region, and starts
that skip the steps the source already made (issue 26).

Example:
    >>> import torch
    >>> from moft.method.keep import blend
    >>> z, src = torch.ones(1, 2, 1, 2, 2), torch.zeros(1, 2, 1, 2, 2)   # (B, F, C, h, w)
    >>> mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]])[None, None, None]  # (1, 1, 1, h, w): the region
    >>> blend(z, src, mask)[0, 0, 0]                                     # the guided cell, the source elsewhere
    tensor([[1., 0.],
            [0., 0.]])

Levers, each a ``GuidanceConfig`` field (``moft.method.settings``, which checks them), all off by default:

- ``keep="latents"``: after every denoising step up to ``keep_until`` the latents outside the region
  the trajectory sweeps are replaced by the source's latents after the same step (Blended Latent
  Diffusion's blend, with the unguided video of the same noise as the "original"). The source is the
  one a drag target is made from: its latents are recorded while it is sampled (``LatentLog``).
- ``start="source"``: the run begins at the first guided step from the source's latents there;
  before it the guided run and the source are the same computation, done twice otherwise.
- ``start="proxy"``: Time-to-Move's cut-and-drag start: the drag proxy (``moft.method.drag``),
  VAE-encoded and noised with the run's own noise to the first guided step's timestep. With
  ``release`` the region keeps a second, later clock ("dual clock"): until step ``release`` the
  latents inside the region are reset to the proxy noised to the current noise level, while the
  rest denoises freely from the first guided step on.
- ``method="cut-drag"``: the proxy start alone, no gradient iterations (no target, no backward pass).

A ``Keep`` is the small callable object the sampler consults: where to start (``first``,
``start``) and what to do to the latents after each step (``Keep(i, z)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models.latents import encode_video
from ..models.pipeline import sampling_scheduler
from .drag import drag_video, object_regions, swept_masks
from .inversion import noise_latents


def blend(z: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask * z + (1 - mask) * reference``: ``z`` inside the region, ``reference`` outside.

    Args:
        z: ``(B, F, C, h, w)`` latents of the run.
        reference: latents of the same shape (the source's at the same step).
        mask: broadcastable to ``z``, 1 inside the region, 0 outside (fractions mix).
    """
    mask = mask.to(z)
    return mask * z + (1 - mask) * reference.to(z)


def region_mask(masks: torch.Tensor) -> torch.Tensor:
    """The union of ``(R, h, w)`` region masks as a ``(1, 1, 1, h, w)`` float multiplier (every frame).

    Example:
        >>> m = torch.zeros(2, 3, 3, dtype=torch.bool); m[0, 0, 0] = m[1, 2, 2] = True
        >>> region_mask(m)[0, 0, 0]
        tensor([[1., 0., 0.],
                [0., 0., 0.],
                [0., 0., 1.]])
    """
    return torch.as_tensor(masks).bool().any(0).float()[None, None, None]  # (1, 1, 1, h, w)


class LatentLog:
    """A sampler callback that records the latents after every step (the source's trajectory).

    Example:
        >>> log = LatentLog()                      # sample(..., callback=log)
        >>> log({"i": 0, "latents": torch.ones(1)}); log({"i": 1, "latents": 2 * torch.ones(1)})
        >>> log = log.started(torch.zeros(1))      # the run's initial noise (SampleResult.initial_latents)
        >>> [float(log.before(i)) for i in (0, 1, 2)]    # the noise, then each step's result
        [0.0, 1.0, 2.0]
    """

    def __init__(self, initial: torch.Tensor | None = None):
        self.initial = initial
        self.after: dict[int, torch.Tensor] = {}

    def started(self, initial: torch.Tensor) -> "LatentLog":
        """Set the initial noise (known once the sample returns); returns the log."""
        self.initial = initial.detach().clone()
        return self

    def __call__(self, info: dict) -> None:
        self.after[info["i"]] = info["latents"].detach().clone()

    def before(self, i: int) -> torch.Tensor:
        """The latents that enter step ``i`` (the initial noise for step 0)."""
        return self.initial if i == 0 else self.after[i - 1]


def cut_drag_start(pipe, proxy_latents: torch.Tensor, noise: torch.Tensor, timestep) -> torch.Tensor:
    """The drag proxy's clean latents noised to ``timestep`` with the run's noise (Time-to-Move's start).

    At the schedule's first timestep of a flow model (``t = 1000``) this is the noise itself; at a
    timestep of zero noise it is the proxy (``moft.method.inversion.noise_latents``).
    """
    return noise_latents(pipe, proxy_latents, noise.to(proxy_latents), timestep)


@dataclass
class Keep:
    """What the sampler does differently (built by ``keep_plan``; see the module docstring).

    Attributes:
        first: the step the run begins at (0: from the noise, as without a plan).
        start: ``(1, F, C, h, w)`` latents entering step ``first``.
        mask: ``(1, 1, 1, h, w)`` 1 inside the swept region.
        timesteps: the schedule's timesteps (the noise level after step ``i`` is ``timesteps[i + 1]``).
        source: the source's ``LatentLog`` (``keep="latents"``), else None.
        keep_until: blend with the source after steps ``i < keep_until``.
        region: ``(proxy clean latents, noise, pipe)`` for the dual clock, else None.
        release: the region follows the noised proxy after steps ``i + 1 < release``; the last step always
            denoises it freely (a ``release`` beyond a short schedule ends there).
    """

    first: int
    start: torch.Tensor
    mask: torch.Tensor
    timesteps: list
    source: LatentLog | None = None
    keep_until: int = 0
    region: tuple | None = None
    release: int = 0

    def __call__(self, i: int, z: torch.Tensor) -> torch.Tensor:
        """The latents after step ``i``, with the region's clock and the kept background applied."""
        if self.region is not None and i + 1 < min(self.release, len(self.timesteps)):  # the last step runs free
            proxy, noise, pipe = self.region
            z = blend(cut_drag_start(pipe, proxy, noise, self.timesteps[i + 1]), z, self.mask)
        if self.source is not None and i < self.keep_until:
            z = blend(z, self.source.after[i], self.mask)
        return z


def keep_plan(pipe, g, *, steps: int, masks: torch.Tensor, log: LatentLog,
              proxy_frames: np.ndarray | None = None) -> Keep | None:
    """The ``Keep`` a ``GuidanceConfig`` asks for, or None when every lever is off (today's sampler).

    Args:
        pipe: the pipeline.
        g: the ``GuidanceConfig`` (``keep``, ``keep_until``, ``start``, ``release``, ``steps``).
        steps: denoising steps of the run.
        masks: ``(R, h, w)`` the regions the trajectory sweeps (``moft.method.drag.swept_masks``).
        log: the source's ``LatentLog`` (sampled with ``callback=log``, from the run's noise).
        proxy_frames: ``(F, H, W, 3)`` the drag proxy (``start="proxy"``).
    """
    if g.keep == "off" and g.start == "noise":
        return None
    sched = sampling_scheduler(pipe)
    sched.set_timesteps(steps)
    timesteps = list(sched.timesteps)
    first = 0 if g.start == "noise" else g.steps[0]
    start, region = (log.before(first) if g.start != "proxy" else None), None  # a proxy start needs the noise only
    if g.start == "proxy":
        if proxy_frames is None:
            raise ValueError("start='proxy' needs the drag proxy")
        proxy = encode_video(pipe, (np.asarray(proxy_frames) * 255).round().astype(np.uint8)).to(log.initial)
        start = cut_drag_start(pipe, proxy, log.initial, timesteps[first])
        region = (proxy, log.initial, pipe)
    keep_until = 0 if g.keep == "off" else (steps if g.keep_until is None else g.keep_until)
    return Keep(first, start, region_mask(masks), timesteps, log if g.keep != "off" else None, keep_until,
                region, g.release or 0)


def drag_inputs(pipe, g, trajectory, frames: np.ndarray | None, *, steps: int, size: tuple[int, int],
                latent_size: tuple[int, int], log: LatentLog | None):
    """What a drag run is made from (one procedure for ``moft control`` and the suites): the regions, a point
    grown into the object under it when ``g.point_region == "segment"`` (``moft.method.drag.object_regions``);
    the drag proxy, frame ``g.drag_frame`` of ``frames`` cut and dragged along them; and the keep levers'
    ``Keep`` (None when they are off or there is no ``log``).

    Example:
        >>> from moft.io.trajectory import parse_trajectory
        >>> from moft.method.settings import GuidanceConfig
        >>> frames = np.zeros((4, 32, 32, 3)); frames[:, 8:16, 8:16] = (1.0, 0.0, 0.0)   # (F, H, W, 3)
        >>> traj = parse_trajectory({"version": 1, "frames": 4,                      # a point on it, moving right
        ...                          "regions": [{"points": [[0.375, 0.375], [0.625, 0.375]], "radius": 0.05}]})
        >>> traj, proxy, keep = drag_inputs(None, GuidanceConfig(point_region="segment"), traj, frames, steps=25,
        ...                                 size=(32, 32), latent_size=(4, 4), log=None)
        >>> proxy[-1, 8:16, 16:24].mean(axis=(0, 1)).tolist(), keep     # the whole square moved 8 px, no keep
        ([1.0, 0.0, 0.0], None)

    Args:
        pipe: the pipeline (encodes the proxy for a proxy start).
        g: the run's ``GuidanceConfig``.
        trajectory: the request's ``Trajectory``.
        frames: ``(F, H, W, 3)`` in [0, 1], what is dragged (the unguided source, or the image held still), or
            None (nothing to drag: a reference clip's target).
        steps: denoising steps of the run.
        size: ``(H, W)`` of the video.
        latent_size: ``(h, w)`` of its latent grid.
        log: the source's ``LatentLog`` when a keep lever needs it, else None.

    Returns:
        ``(trajectory, proxy (F, H, W, 3) or None, Keep or None)``.
    """
    if frames is not None:
        g.check_frames(len(frames))
        frames = frames[g.drag_frame:]  # (F', H, W, 3): what is dragged is its first frame
        if g.point_region == "segment":
            trajectory = object_regions(trajectory, frames[0])
    proxy = drag_video(frames, trajectory) if frames is not None else None  # (F, H, W, 3)
    keep = None
    if log is not None:
        masks = torch.from_numpy(swept_masks(trajectory, size, latent_size))  # (R, h, w)
        keep = keep_plan(pipe, g, steps=steps, masks=masks, log=log, proxy_frames=proxy)
    return trajectory, proxy, keep

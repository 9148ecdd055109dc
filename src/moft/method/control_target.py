"""The target of a motion request: one dispatch (reference clip, drag proxy, synthesized curves) for
``moft control`` and ``moft evaluate``.

Example:
    >>> import moft
    >>> from moft.method.settings import GuidanceConfig
    >>> pipe = moft.load_pipeline()
    >>> traj = moft.load_trajectory("examples/object_left.json", default_frames=8)
    >>> t = build_target(pipe, traj, moft.default_channels(), kind="curves", steps=25, guidance=GuidanceConfig())
    >>> t.curves.shape, t.meta["source"]                 # (R, F, d): one curve per region and channel
    (torch.Size([1, 8, 4]), 'trajectory')

A request becomes a target in one of three ways: the inverted (or noised) MOFT of a ``reference``
clip in the trajectory's regions (on an image-to-video model, inverted as the animation of the clip's own
frame 0, so the motion copied is the clip's whatever image the run animates); a ``drag`` target, the MOFT of the unguided ``source`` video with
its regions dragged along the trajectory; or ``curves`` synthesized from the trajectory and the
channels' fitted response (the paper's). ``features`` selects the ablations of ``moft evaluate``:
``"moft"`` (the motion channels; ``indices`` a subset of them), ``"cr"`` (all channels, content
removed) and ``"vanilla"`` (all channels, raw; a reference only).
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.pipeline import default_video_size, latent_frames, latent_time_grid, vae_scale
from .channels import MotionChannels
from .inversion import clip_conditioning
from .sampler import guided_timesteps
from .settings import GuidanceConfig
from .targets import Target, TargetError, drag_target, reference_target, synthesize_target

FEATURES = ("moft", "cr", "vanilla")


def restrict_target(target: Target, chosen: torch.Tensor) -> Target:
    """Keep the target's entries for ``chosen`` channels (a target built over all channels)."""
    all_idx = target.channels if target.channels is not None else torch.arange(target.curves.shape[-1])
    pos = torch.tensor([int((all_idx == c).nonzero()[0]) for c in chosen.tolist()])
    maps = target.maps[:, :, pos] if target.maps is not None else None  # (R, F, d, h, w)
    timed = target.timed_maps[:, :, :, pos] if target.timed_maps is not None else None  # (S, R, F, d, h, w)
    return Target(target.curves[..., pos], target.masks, chosen, target.content_removal, maps, target.meta, timed)


def build_target(pipe, trajectory, channels: MotionChannels | None, *, kind: str, steps: int,
                 guidance: GuidanceConfig, video_size: tuple[int, int, int] | None = None, reference: np.ndarray | None = None, source: np.ndarray | None = None,
                 proxy: np.ndarray | None = None, gain: float = 1.0, timestep: int = 200, features: str = "moft",
                 indices: torch.Tensor | None = None, progress=None, image_cond: dict | None = None) -> Target:
    """The target of one request (see the module docstring).

    Args:
        pipe: the pipeline that will be guided.
        trajectory: a ``Trajectory`` (its regions; with ``reference`` None, its motion too), or None
            with a whole-frame reference.
        channels: motion channels (``features="moft"`` and curves need them).
        kind: ``"curves"`` or ``"drag"`` (a trajectory's target; ignored with a ``reference``).
        steps: the run's sampling steps (the schedule a reference is inverted on).
        video_size: ``(frames, height, width)`` of the run (default: the model's, ``default_video_size``).
        guidance: its ``target_mode``, ``target_timesteps`` and ``site`` say how a video is read.
        reference: ``(F, H, W, 3)`` uint8 clip whose motion to copy, at the run's frame count.
        source: ``(F, H, W, 3)`` the unguided video of the same noise (a drag target drags it).
        proxy: ``moft.method.drag.drag_video(source, trajectory)`` if the caller made it.
        gain: strength of synthesized curves.
        timestep: timestep of a fixed reference or drag target (official: 200).
        features / indices: ``moft`` over ``indices`` (default: ``channels.indices``), ``cr`` or ``vanilla``.
        progress: ``progress(done, total)`` of an inversion.
        image_cond: an image-to-video model's image conditioning: a drag proxy is inverted from that image (its
            frame 0); a reference clip from its own frame 0 (``clip_conditioning``), whatever image is animated.

    Raises:
        TargetError: vanilla features without a reference; ``TrajectoryError``: a zoom in a curves target.
    """
    g = guidance
    f, h, w = video_size or default_video_size(pipe)
    s = vae_scale(pipe)
    read = {"image_cond": image_cond, "mode": g.target_mode, "timesteps": guided_timesteps(pipe, steps, g) if g.target_timesteps == "guided" else None}
    whole = features != "moft" or indices is not None  # built over all channels, then restricted for moft
    if reference is not None:
        masks = torch.from_numpy(trajectory.masks(h // s, w // s)) if trajectory is not None else None  # (R, h, w)
        own = dict(read, image_cond=clip_conditioning(pipe, reference, h, w))  # the clip's motion from its frame 0
        target = reference_target(pipe, reference, channels=None if whole else channels, masks=masks, num_steps=steps,
                                  timestep=timestep, site=g.site, content_removal=features != "vanilla",
                                  progress=progress, height=h, width=w, **own)
        expected = latent_frames(pipe, len(reference))
        if target.num_frames != expected:
            raise TargetError(f"reference video has {target.num_frames} latent frames, the model makes {expected}")
    elif features == "vanilla":
        raise TargetError("vanilla features need a reference video")
    elif kind == "drag":
        target = drag_target(pipe, source, trajectory, channels=None if whole else channels, num_steps=steps,
                             timestep=timestep, site=g.site, progress=progress, proxy=proxy, **read)
    else:
        chosen = torch.arange(channels.num_channels) if features == "cr" else indices
        return synthesize_target(trajectory, channels, latent_size=(h // s, w // s), num_frames=f, gain=gain, indices=chosen,
                                 time_grid=latent_time_grid(pipe, f))
    if whole and features == "moft":
        return restrict_target(target, indices if indices is not None else channels.indices)
    return target


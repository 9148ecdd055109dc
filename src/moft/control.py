"""Motion control in one call: trajectory or reference video -> target -> guided sampling.

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()                                   # the shipped model
    >>> traj = moft.load_trajectory("examples/object_left.json", default_frames=8)
    >>> res = moft.control(pipe, traj, prompt="a red disk", channels=moft.default_channels(), seed=0,
    ...                    keep_source=True)
    >>> res.frames.shape, res.source_frames.shape                    # guided and unguided, same noise
    ((8, 32, 32, 3), (8, 32, 32, 3))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .channels import MotionChannels, default_video_size
from .drag import drag_video
from .sampler import GuidanceConfig, SampleResult, config_dict, sample
from .targets import TARGET_KINDS, Target, drag_target, reference_target, synthesize_target


def default_guidance(model=None, *, defaults: dict | None = None, **overrides) -> GuidanceConfig:
    """The official settings, updated by the model folder's ``moft.json`` ``"guidance"`` entry.

    Example:
        >>> from moft.models import load_pipeline, pipeline_defaults
        >>> g = default_guidance()            # the shipped model's tuned settings, official otherwise
        >>> default_guidance("path/to/animatediff", iterations=3).iterations   # override one setting
        3
        >>> default_guidance(defaults=pipeline_defaults(load_pipeline())) == g  # the folder a pipeline came from
        True
    """
    from .models import model_defaults

    defaults = model_defaults(model) if defaults is None else defaults
    settings = dict(defaults.get("guidance", {}), **overrides)
    if "steps" in settings:
        settings["steps"] = tuple(settings["steps"])
    return GuidanceConfig(**settings)


@dataclass
class ControlResult:
    """Frames plus diagnostics of one controlled generation.

    Attributes:
        frames: ``(F, H, W, 3)`` float32 guided video.
        source_frames: the unguided video from the same noise, or None.
        target: the ``Target`` used.
        result: the sampler's ``SampleResult`` (latents, losses, counts, seconds).
        report: JSON-ready settings and diagnostics.
        proxy_frames: ``(F, H, W, 3)`` the drag proxy a drag target was inverted from, else None.
    """

    frames: np.ndarray
    source_frames: np.ndarray | None
    target: Target
    result: SampleResult
    report: dict = field(default_factory=dict)
    proxy_frames: np.ndarray | None = None


def control(pipe, trajectory=None, *, prompt: str, channels: MotionChannels | None = None,
            reference: np.ndarray | None = None, target: Target | None = None, seed: int = 0, steps: int = 25,
            guidance_scale: float | None = None, guidance: GuidanceConfig | None = None,
            init_latents: torch.Tensor | None = None, keep_source: bool = False, gain: float = 1.0,
            reference_timestep: int = 200, target_kind: str | None = None, progress=None) -> ControlResult:
    """Steer a generation's motion.

    Args:
        pipe: a diffusers text-to-video pipeline.
        trajectory: a parsed ``Trajectory`` (regions and motion); with ``reference`` it gives the regions only.
        prompt: text prompt.
        channels: motion channels (needed unless ``target`` is given with its own channels).
        reference: ``(F, H, W, 3)`` reference video: the target is its inverted MOFT.
        target: a ready ``Target`` (e.g. ``Target.load``); overrides trajectory and reference.
        seed, steps: sampling settings.
        guidance_scale: CFG scale (default: the model folder's ``moft.json``, else 7.5).
        guidance: ``GuidanceConfig`` (default: the model folder's ``moft.json``, else the official settings).
        init_latents: ``(1, F, C, h, w)`` initial noise (reproduce or edit an earlier video).
        keep_source: also return the unguided video from the same noise.
        gain: strength of synthesized curves.
        target_kind: how a trajectory becomes a target: ``"curves"`` (the paper's region-mean
            synthesis from the channels' fitted response) or ``"drag"`` (the unguided video of the
            same noise, its regions dragged along the trajectory and inverted: per-position maps;
            pair it with ``GuidanceConfig(loss="per_position")``). Default: the model folder's
            ``moft.json`` ``"target"``, else ``"curves"``.
        reference_timestep: timestep of the reference's inverted MOFT (official: 200, step 5 of 25).
        progress: ``progress(done, total)``.
    """
    from .latents import vae_scale

    from .models import pipeline_defaults

    defaults = pipeline_defaults(pipe)
    g = guidance or default_guidance(defaults=defaults)
    guidance_scale = guidance_scale if guidance_scale is not None else defaults.get("guidance_scale", 7.5)
    target_kind = target_kind or defaults.get("target", "curves")
    f, h, w = default_video_size(pipe)
    if init_latents is not None:
        f = int(init_latents.shape[1])
    size = (h // vae_scale(pipe), w // vae_scale(pipe))
    source = None  # the unguided video of the same noise, when the target needs one
    if target is None:
        if reference is not None:
            masks = torch.from_numpy(trajectory.masks(*size)) if trajectory is not None else None
            target = reference_target(pipe, reference[:f], channels=channels,
                                      masks=masks, num_steps=steps, timestep=reference_timestep, site=g.site)
            if target.num_frames != f:
                raise ValueError(f"reference video has {target.num_frames} frames, the model makes {f}")
        elif target_kind not in TARGET_KINDS:
            raise ValueError(f"target_kind must be one of {', '.join(TARGET_KINDS)}, got {target_kind!r}")
        elif trajectory is None or channels is None:
            raise ValueError("a target from a trajectory needs the trajectory and motion channels")
        elif target_kind == "drag":
            source = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=guidance_scale, num_frames=f,
                            latents=init_latents)
            init_latents = source.initial_latents
            target = drag_target(pipe, source.frames, trajectory, channels=channels, num_steps=steps,
                                 timestep=reference_timestep, site=g.site)
        else:
            target = synthesize_target(trajectory, channels, latent_size=size, num_frames=f, gain=gain)
    out = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=guidance_scale, num_frames=f,
                 latents=init_latents, target=target, guidance=g, keep_source=keep_source and source is None,
                 progress=progress)
    if keep_source and source is not None:
        out.source_frames = source.frames  # the drag target's unguided video: the same noise, already made
    report = {
        "prompt": prompt, "seed": seed, "steps": steps, "guidance_scale": guidance_scale,
        "frames": f, "height": h, "width": w, "guidance": config_dict(g),
        "weight": g.resolved_weight(len(target.masks)), "gain": gain,
        "target": {k: v for k, v in target.meta.items() if k != "trajectory"},
        "channels_digest": channels.digest() if channels is not None else None,
        "losses": out.losses, "counts": out.counts, "seconds": out.seconds,
    }
    proxy = drag_video(source.frames, trajectory) if source is not None else None  # cheap: what drag_target inverted
    return ControlResult(out.frames, out.source_frames, target, out, report, proxy)

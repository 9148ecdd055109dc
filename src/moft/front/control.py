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

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..method.channels import MotionChannels, default_video_size
from ..method.drag import drag_video, swept_masks
from ..method.keep import LatentLog, keep_plan
from ..method.sampler import GuidanceConfig, SampleResult, config_dict, guided_timesteps, sample
from ..method.targets import TARGET_KINDS, Target, drag_target, reference_target, synthesize_target


class ControlError(ValueError):
    """A control setting or input that cannot work (bad number, latents of another shape, ...)."""


MAX_GAIN = 100.0  # curves this far past the channels' fitted response saturate; beyond, the loss overflows
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed's range


def _finite(name: str, value, *, positive: bool = False, minimum: float | None = None,
            maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ControlError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ControlError(f"{name} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ControlError(f"{name} must be > 0, got {value:g}")
    if minimum is not None and value < minimum:
        raise ControlError(f"{name} must be >= {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise ControlError(f"{name} must be <= {maximum:g}, got {value:g}")
    return value


def _integer(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ControlError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ControlError(f"{name} must be {f'in {lo}..{hi}' if hi is not None else f'>= {lo}'}, got {value}")
    return int(value)


def check_settings(*, steps: int = 25, seed: int = 0, guidance_scale: float | None = None, gain: float = 1.0,
                   guidance: GuidanceConfig | None = None) -> None:
    """Raise ``ControlError`` (one line) on settings that cannot work, before any model work.

    Example:
        >>> check_settings(steps=25, seed=0, guidance_scale=4.0, gain=1.0, guidance=GuidanceConfig())
        >>> check_settings(steps=0)
        Traceback (most recent call last):
        moft.front.control.ControlError: steps must be >= 1, got 0

    Checks: ``steps >= 1``; ``0 <= seed <= 2**63 - 1``; a finite ``guidance_scale >= 0``; a finite
    ``0 < gain <= 100``; a finite positive step size and weight; and, when guidance iterates, guided
    steps ``START:END`` that share at least one step with the ``steps``-step schedule.
    """
    _integer("steps", steps, 1)
    _integer("seed", seed, 0, MAX_SEED)
    if guidance_scale is not None:
        _finite("guidance_scale", guidance_scale, minimum=0.0)
    _finite("gain", gain, positive=True, maximum=MAX_GAIN)
    if guidance is not None:
        g = guidance
        _integer("iterations", g.iterations, 0)
        _finite("step_size", g.step_size, positive=True)
        if g.weight is not None:
            _finite("weight", g.weight, positive=True)
        start, end = (int(v) for v in g.steps)
        if g.iterations > 0 and (start < 0 or start >= min(end, steps)):
            raise ControlError(f"guided steps {start}:{end} run no step of the {steps}-step schedule "
                               f"(0..{steps - 1}); give --guided-steps within it or more --steps")


def check_init_latents(latents, pipe, num_frames: int | None = None) -> torch.Tensor:
    """Raise ``ControlError`` unless ``latents`` is finite ``(1, F, C, h, w)`` noise for ``pipe``: its
    latent channels and grid, and ``num_frames`` frames if given (else any).

    Example:
        >>> check_init_latents(torch.randn(1, 8, 4, 16, 16), pipe)        # doctest: +SKIP
    """
    from ..models.latents import latent_channels, vae_scale

    f, h, w = default_video_size(pipe)
    s = vae_scale(pipe)
    if not isinstance(latents, torch.Tensor):
        raise ControlError(f"init latents must be a tensor, got {type(latents).__name__}")
    frames = num_frames or (int(latents.shape[1]) if latents.ndim == 5 and latents.shape[1] > 0 else f)
    want = (1, frames, latent_channels(pipe), h // s, w // s)  # (B, F, C, h, w)
    if tuple(latents.shape) != want:
        raise ControlError(f"init latents have shape {tuple(latents.shape)}; this model needs (B, F, C, h, w) = {want}")
    if not torch.isfinite(latents).all():
        raise ControlError("init latents contain NaN or inf")
    return latents


def default_guidance(model=None, *, defaults: dict | None = None, **overrides) -> GuidanceConfig:
    """The official settings, updated by the model folder's ``moft.json`` ``"guidance"`` entry (and its
    ``"site"`` when the guidance entry names none).

    Example:
        >>> from moft.models.loading import load_pipeline, pipeline_defaults
        >>> g = default_guidance()            # the shipped model's tuned settings, official otherwise
        >>> default_guidance("path/to/animatediff", iterations=3).iterations   # override one setting
        3
        >>> default_guidance(defaults=pipeline_defaults(load_pipeline())) == g  # the folder a pipeline came from
        True
    """
    from ..models.loading import model_defaults

    defaults = model_defaults(model) if defaults is None else defaults
    settings = dict(defaults.get("guidance", {}), **overrides)
    if settings.get("site") is None and defaults.get("site"):
        settings["site"] = defaults["site"]  # the folder's capture site (moft locate --write-defaults)
    try:
        if "steps" in settings:
            settings["steps"] = tuple(settings["steps"])
        return GuidanceConfig(**settings)
    except (TypeError, ValueError) as exc:  # an unknown key or a bad value, from moft.json or the caller
        raise ControlError(f"guidance settings: {str(exc).strip().splitlines()[0]}") from None


def run_settings(defaults: dict, *, guidance: GuidanceConfig | None = None, guidance_scale: float | None = None,
                 target_kind: str | None = None, prompt: str | None = None, **overrides) -> tuple:
    """What a control run uses, each setting: given, else the model folder's ``moft.json``, else the paper's.

    Example:
        >>> from moft.models.loading import model_defaults
        >>> g, cfg, kind, prompt = run_settings(model_defaults())      # moft-tiny's moft.json
        >>> cfg, kind, g.loss, prompt
        (4.0, 'drag', 'per_position', 'a red disk standing still')

    Args:
        defaults: the folder's ``moft.json`` (``model_defaults`` or ``pipeline_defaults``).
        guidance: a whole ``GuidanceConfig``; else ``default_guidance(defaults, **overrides)``.
        guidance_scale, target_kind, prompt: given values, or None.

    Returns:
        ``(guidance, guidance_scale, target_kind, prompt)``.
    """
    from ..models.pipeline import OFFICIAL_CFG

    g = guidance or default_guidance(defaults=defaults, **overrides)
    cfg = guidance_scale if guidance_scale is not None else defaults.get("guidance_scale", OFFICIAL_CFG)
    return g, cfg, target_kind or defaults.get("target", "curves"), prompt if prompt is not None else defaults.get("prompt", "")


@dataclass
class ControlResult:
    """Frames plus diagnostics of one controlled generation.

    Attributes:
        frames: ``(F, H, W, 3)`` float32 guided video.
        source_frames: the unguided video from the same noise, or None.
        target: the ``Target`` used (None when guidance does not iterate: nothing to aim at).
        result: the sampler's ``SampleResult`` (latents, losses, counts, seconds).
        report: JSON-ready settings and diagnostics.
        proxy_frames: ``(F, H, W, 3)`` the drag proxy a drag target was inverted from, else None.
    """

    frames: np.ndarray
    source_frames: np.ndarray | None
    target: Target | None
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
        progress: ``progress(done, total, phase)`` for every long phase, ``phase`` one of ``"source"``
            (the unguided video a drag target starts from), ``"invert"`` (inverting the reference or
            the drag proxy) and ``"guide"`` (the guided sampling).

    Raises:
        ControlError: a setting that cannot work (``check_settings``), init latents of another shape
            or not finite; ``ChannelsError``: channels of another width or with bad indices. Both
            before any model work.
    """
    from .extract import site_channels
    from ..models.latents import vae_scale
    from ..models.loading import pipeline_defaults
    from ..models.pipeline import latent_frames, latent_time_grid, pipeline_site, temporal_scale

    g, guidance_scale, target_kind, _ = run_settings(pipeline_defaults(pipe), guidance=guidance,
                                                     guidance_scale=guidance_scale, target_kind=target_kind)
    check_settings(steps=steps, seed=seed, guidance_scale=guidance_scale, gain=gain, guidance=g)
    if target_kind not in TARGET_KINDS:
        raise ControlError(f"target_kind must be one of {', '.join(TARGET_KINDS)}, got {target_kind!r}")
    f, h, w = default_video_size(pipe)
    if init_latents is not None:
        f = (int(check_init_latents(init_latents, pipe).shape[1]) - 1) * temporal_scale(pipe) + 1  # video frames of those latent frames
    if channels is not None:
        site = g.site or pipeline_site(pipe)
        channels.check(site_channels(pipe, site), site)
    size = (h // vae_scale(pipe), w // vae_scale(pipe))
    if target is not None and (target.num_frames != f or tuple(target.size) != size):
        raise ControlError(f"the target is for {target.num_frames} frames on a {tuple(target.size)} latent grid; "
                           f"this run makes {f} frames on {size}")
    if g.needs_source and trajectory is None:
        raise ControlError(f"keep={g.keep!r} / start={g.start!r} need a trajectory (the region that moves)")
    phase = (lambda name: (lambda done, total: progress(done, total, name))) if progress else (lambda name: None)
    guided = g.iterates  # check_settings made sure the guided steps meet the schedule
    source = proxy = log = None  # the unguided video of the same noise and its drag proxy, when needed
    if g.needs_source:  # the keep levers start from or keep the source's latents (moft.method.keep)
        log = LatentLog()
        source = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=guidance_scale, num_frames=f,
                        latents=init_latents, progress=phase("source"), callback=log)
        init_latents = log.started(source.initial_latents).initial
        proxy = drag_video(source.frames, trajectory)
    read = {"mode": g.target_mode,  # how a reference or drag proxy becomes a target: inverted or noised, at which t
            "timesteps": guided_timesteps(pipe, steps, g) if g.target_timesteps == "guided" else None}
    if target is None and guided:
        if reference is not None:
            reference = np.asarray(reference)
            if reference.ndim != 4 or len(reference) < f:
                raise ControlError(f"the reference video has shape {reference.shape}; the run needs (F >= {f}, H, W, 3)"
                                   " (read any clip with moft.read_video(path, num_frames=F, size=(H, W)))")
            masks = torch.from_numpy(trajectory.masks(*size)) if trajectory is not None else None
            target = reference_target(pipe, reference[:f], channels=channels, masks=masks, num_steps=steps,
                                      timestep=reference_timestep, site=g.site, progress=phase("invert"), **read)
            if target.num_frames != latent_frames(pipe, f):
                raise ControlError(f"reference video has {target.num_frames} latent frames, the model makes "
                                   f"{latent_frames(pipe, f)}")
        elif trajectory is None or channels is None:
            raise ControlError("a target from a trajectory needs the trajectory and motion channels")
        elif target_kind == "drag":
            if source is None:
                source = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=guidance_scale, num_frames=f,
                                latents=init_latents, progress=phase("source"))
                init_latents = source.initial_latents
                proxy = drag_video(source.frames, trajectory)  # (F, H, W, 3) what the target inverts
            target = drag_target(pipe, source.frames, trajectory, channels=channels, num_steps=steps,
                                 timestep=reference_timestep, site=g.site, progress=phase("invert"), proxy=proxy,
                                 **read)
        else:
            target = synthesize_target(trajectory, channels, latent_size=size, num_frames=f, gain=gain,
                                       time_grid=latent_time_grid(pipe, f))
    plan = keep_plan(pipe, g, steps=steps, masks=torch.from_numpy(swept_masks(trajectory, (h, w), size)), log=log,
                     proxy_frames=proxy) if log is not None else None
    out = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=guidance_scale, num_frames=f,
                 latents=init_latents, target=target if guided else None, guidance=g if guided else None,
                 keep_source=keep_source and source is None, progress=phase("guide"), keep=plan)
    if keep_source and source is not None:
        out.source_frames = source.frames  # the drag target's unguided video: the same noise, already made
    report = {
        "prompt": prompt, "seed": seed, "steps": steps, "guidance_scale": guidance_scale,
        "frames": f, "height": h, "width": w, "guidance": config_dict(g),
        "weight": g.resolved_weight(len(target.masks)) if target is not None else None, "gain": gain,
        "target": {k: v for k, v in target.meta.items() if k != "trajectory"} if target is not None else None,
        "channels_digest": channels.digest() if channels is not None else None,
        "losses": out.losses, "counts": out.counts, "seconds": out.seconds,
    }
    return ControlResult(out.frames, out.source_frames, target, out, report, proxy)

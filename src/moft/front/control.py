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

from ..io.tracks import Tracks, rescale, tracks_trajectory, trajectory_tracks
from ..io.trajectory import Trajectory
from ..method.channels import ChannelsError, MotionChannels
from ..method.control_target import build_target
from ..method.inversion import InversionError, check_inverts
from ..method.keep import Keep, LatentLog, drag_inputs
from ..method.points import PointRequest, point_request
from ..method.sampler import SampleResult, check_latents, check_sample, sample
from ..method.settings import (MAX_SEED, MAX_STEPS, GuidanceConfig, GuidanceError, RunSettings, SettingsError,
                               check_integer, check_number, config_dict, resolve_settings)
from ..method.targets import Target
from ..method.transfer import TransferError, transfer_trajectory
from ..models.adapters import architecture_of
from ..models.image import image_conditioning, still_frames
from ..models.latents import initial_noise
from ..models.pipeline import (default_video_size, denoiser, latent_frames, latent_time_grid, model_record,
                               pipeline_record, pipeline_site, temporal_scale, vae_scale)
from ..models.record import ModelRecord
from .extract import check_image, site_channels
from ..models.loading import placement


class ControlError(SettingsError):
    """A control setting or input that cannot work (bad number, latents of another shape, ...); ``field``
    names the setting when one is to blame (else None)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


MAX_GAIN = 100.0  # curves this far past the channels' fitted response saturate; beyond, the loss overflows


def check_settings(*, steps: int = 25, seed: int = 0, guidance_scale: float | None = None, gain: float = 1.0,
                   guidance: GuidanceConfig | None = None) -> None:
    """Raise ``ControlError`` (one line) on settings that cannot work, before any model work.

    Example:
        >>> check_settings(steps=25, seed=0, guidance_scale=4.0, gain=1.0, guidance=GuidanceConfig())
        >>> check_settings(steps=0)
        Traceback (most recent call last):
        moft.front.control.ControlError: steps must be in 1..10000, got 0

    Checks: ``1 <= steps <= 10000``; ``0 <= seed <= 2**63 - 1``; a finite ``guidance_scale >= 0``; a
    finite ``0 < gain <= 100``; and, when guidance iterates, guided steps that share at least one step
    with the ``steps``-step schedule (``GuidanceConfig.check_schedule``; its fields check themselves).
    """
    check_integer("steps", steps, 1, MAX_STEPS, error=ControlError)
    check_integer("seed", seed, 0, MAX_SEED, error=ControlError)
    if guidance_scale is not None:
        check_number("guidance_scale", guidance_scale, lo=0.0, error=ControlError)
    check_number("gain", gain, lo=0.0, hi=MAX_GAIN, above=True, error=ControlError)
    if guidance is not None:
        try:
            guidance.check_schedule(steps)
        except SettingsError as exc:
            raise ControlError(f"guided {exc}") from None


def check_init_latents(latents, pipe, num_frames: int | None = None) -> torch.Tensor:
    """Raise ``ControlError`` unless ``latents`` is finite ``(1, F, C, h, w)`` noise for ``pipe``: its
    latent channels and grid, ``num_frames`` video frames if given, else a count its VAE takes
    (``moft.method.sampler.check_latents``).

    Example:
        >>> check_init_latents(torch.randn(1, 8, 4, 16, 16), pipe)        # doctest: +SKIP
    """
    return check_latents(pipe, latents, num_frames, error=ControlError)


def default_guidance(model=None, *, record: ModelRecord | None = None, **overrides) -> GuidanceConfig:
    """The official settings, updated by the model folder's ``moft.json`` (its ``"guidance"`` entry, and
    its ``"site"`` when the guidance entry names none), then by ``overrides`` (``resolve_settings``).

    Example:
        >>> from moft.models.loading import load_pipeline
        >>> from moft.models.pipeline import pipeline_record
        >>> g = default_guidance()            # the shipped model's tuned settings, official otherwise
        >>> default_guidance("moft-tiny", iterations=3).iterations   # override one setting
        3
        >>> default_guidance(record=pipeline_record(load_pipeline())) == g  # the folder a pipeline came from
        True
    """
    record = model_record(model) if record is None else record
    return resolve_settings(record, overrides).guidance


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


@dataclass
class ControlPlan:
    """One control run, every input checked and every setting resolved; no model work done yet.

    Attributes:
        prompt: the prompt.
        settings: the resolved ``RunSettings`` (guidance, CFG scale, target kind).
        steps, seed, gain, reference_timestep: as ``control``'s arguments.
        size: ``(frames, height, width)`` of the video.
        latent_size: ``(h, w)`` of its latent grid.
        trajectory, channels, target, init_latents, keep_source: as given, checked.
        reference: the reference clip cut to ``frames``, or None.
        image: ``(H, W, 3)`` uint8, the image an image-to-video model animates, fitted to the run's size.
        points: the requested point paths of point drag (``points_request``), or None.
        copied: with ``transfer="drag"``, the trajectory measured from the reference clip (``transfer_trajectory``),
            which ``trajectory`` then is; ``reference`` is then None.
    """

    prompt: str
    settings: RunSettings
    steps: int
    seed: int
    gain: float
    reference_timestep: int
    size: tuple[int, int, int]
    latent_size: tuple[int, int]
    trajectory: Trajectory | None = None
    channels: MotionChannels | None = None
    reference: np.ndarray | None = None
    target: Target | None = None
    init_latents: torch.Tensor | None = None
    keep_source: bool = False
    image: np.ndarray | None = None
    points: PointRequest | None = None
    copied: Trajectory | None = None

    @property
    def guidance(self) -> GuidanceConfig:
        return self.settings.guidance

    @property
    def guided(self) -> bool:
        """Whether guidance iterates (``check_settings`` made sure the guided steps meet the schedule; not
        ``method="cut-drag"``)."""
        return self.settings.guidance.iterates

    @property
    def from_trajectory(self) -> bool:
        """Whether a target would be made from the trajectory (no reference clip, no ready target)."""
        return self.target is None and self.reference is None

    @property
    def drags(self) -> bool:
        """Whether the target is a drag target: a source dragged along the trajectory and inverted."""
        return self.settings.drag_target(from_trajectory=self.from_trajectory)

    @property
    def from_image(self) -> bool:
        """Whether the run drags its image (image-to-video: a drag target's proxy, or the cut-and-drag start's,
        is the image held still and dragged, Time-to-Move's recipe)."""
        return self.image is not None and self.settings.drags_image(from_trajectory=self.from_trajectory)

    @property
    def needs_source(self) -> bool:
        """Whether the run needs the unguided video of the same noise: a drag target is made from it (an
        image-to-video run drags its image instead), or a keep lever starts from or keeps its latents
        (``moft.method.keep``; an image's proxy start alone needs only the run's noise)."""
        g = self.guidance
        image_start_only = self.from_image and g.start == "proxy" and g.keep == "off"
        return (self.drags and self.image is None) or (g.needs_source and not image_start_only)


def plan_settings(record: ModelRecord | None, *, steps: int = 25, seed: int = 0, gain: float = 1.0,
                  guidance_scale: float | None = None, guidance: GuidanceConfig | None = None,
                  target_kind: str | None = None, prompt: str | None = None, flags: dict | None = None,
                  drags: bool = True, reference: bool = False, tracks: bool = False) -> RunSettings:
    """The settings of a control run, resolved over the model's ``record`` and checked (``check_settings``);
    runs before the model loads. ``flags``: ``GuidanceConfig`` fields given one by one (the CLI's);
    ``drags``: False when a ready target replaces the trajectory's target; ``reference``: the run copies a reference
    clip (a drag only with ``transfer="drag"``, ``resolve_settings``); ``tracks``: the
    run drags point tracks with the folder's track settings (``track_settings``). Step indices the caller does
    not give are scaled to ``steps`` (``moft.method.settings.scale_step_fields``).

    Example:
        >>> from moft.models.pipeline import model_record
        >>> plan_settings(model_record("moft-tiny"), guidance_scale=5.0, flags={"iterations": 3}).guidance_scale
        5.0
        >>> plan_settings(model_record("moft-tiny"), steps=100000)
        Traceback (most recent call last):
        moft.front.control.ControlError: steps must be in 1..10000, got 100000
    """
    given = dict(flags or {}, guidance_scale=guidance_scale, target_kind=target_kind, prompt=prompt)
    try:
        run = resolve_settings(record, {k: v for k, v in given.items() if v is not None}, guidance=guidance, drags=drags,
                               reference=reference, steps=steps, tracks=tracks)
    except SettingsError as exc:
        raise ControlError(str(exc), getattr(exc, "field", None)) from None
    check_settings(steps=steps, seed=seed, guidance_scale=run.guidance_scale, gain=gain, guidance=run.guidance)
    g = run.guidance
    if g.method == "cut-drag" or g.start == "proxy":
        name = "method" if g.method == "cut-drag" else "start"
        if not drags:
            raise ControlError(f"{name} {getattr(g, name)} drags the trajectory's regions; a ready target has nothing "
                               f"to drag", name)
        if reference and g.transfer != "drag":
            raise ControlError(f"{name} {getattr(g, name)} drags the trajectory's regions; a reference clip copied as "
                               f"a target has nothing to drag (transfer drag drags the clip's measured motion)", name)
    return run


def check_trajectory_frames(trajectory: Trajectory, frames: int) -> None:
    """Raise ``ControlError`` unless the trajectory has the run's frame count (with what to do about it)."""
    if trajectory.frames != frames:
        raise ControlError(f"the trajectory has {trajectory.frames} frames, but this model makes {frames}-frame "
                           f"videos; drop `frames` from the trajectory, or pick a {trajectory.frames}-frame model")


def check_channels(pipe, channels: MotionChannels, site: str | None = None) -> None:
    """Raise ``ChannelsError`` unless ``channels`` fit ``pipe``'s features at ``site`` (default: the
    model's): the architecture they were fitted on, the feature width, indices in range."""
    arch, fitted = architecture_of(denoiser(pipe)).name, channels.meta.get("architecture")
    site = site or pipeline_site(pipe)
    if fitted is not None and fitted != arch:
        raise ChannelsError(f"the channel file was fitted on a {fitted} model ({channels.meta.get('model', '?')}); "
                            f"this model is {arch}: fit its own with moft fit-channels")
    channels.check(site_channels(pipe, site), site)


def plan_control(pipe, trajectory=None, *, prompt: str, channels: MotionChannels | None = None,
                 reference: np.ndarray | None = None, target: Target | None = None, seed: int = 0, steps: int = 25,
                 guidance_scale: float | None = None, guidance: GuidanceConfig | None = None,
                 init_latents: torch.Tensor | None = None, keep_source: bool = False, gain: float = 1.0,
                 reference_timestep: int = 200, target_kind: str | None = None, image: np.ndarray | None = None,
                 fit: str = "crop") -> ControlPlan:
    """Check every input of ``control`` against the loaded ``pipe`` and resolve its settings; no sampling.

    Example:
        >>> plan = plan_control(pipe, traj, prompt="a red disk", channels=channels, steps=25)   # doctest: +SKIP
        >>> plan.size, plan.settings.target_kind                                               # doctest: +SKIP
        ((8, 32, 32), 'drag')

    Raises:
        ControlError, ChannelsError, TrajectoryError, SamplerError: one line each, before any model work.
    """
    if not isinstance(prompt, str):
        raise ControlError(f"prompt must be a string, got {type(prompt).__name__}")
    tracked = isinstance(trajectory, Tracks) and guidance is None  # a track file's points: their objects dragged
    record = pipeline_record(pipe)
    run = plan_settings(record, steps=steps, seed=seed, gain=gain, guidance_scale=guidance_scale,
                        guidance=guidance, target_kind=target_kind, drags=target is None,
                        reference=reference is not None, tracks=tracked)
    check_sample(pipe, prompt, steps=steps, seed=seed, guidance_scale=run.guidance_scale)
    f, h, w = default_video_size(pipe)
    if init_latents is not None:
        f = (int(check_init_latents(init_latents, pipe).shape[1]) - 1) * temporal_scale(pipe) + 1  # its video frames
    size = (h // vae_scale(pipe), w // vae_scale(pipe))
    # pixels of the output frame; on image-to-video the image is fitted to it, so tracks drawn on the image's
    # own size need --tracks-size (rescale) to land on the same places
    trajectory, points = points_request(trajectory, run.guidance.points, f, (w, h), latent_time_grid(pipe, f))
    if channels is not None:
        check_channels(pipe, channels, run.guidance.site)
    if target is not None and (target.num_frames != latent_frames(pipe, f) or tuple(target.size) != size):
        raise ControlError(f"the target is for {target.num_frames} frames on a {tuple(target.size)} latent grid; "
                           f"this run makes {f} frames on {size}")
    if trajectory is not None:
        if not isinstance(trajectory, Trajectory):
            raise ControlError(f"trajectory must be a Trajectory (moft.load_trajectory), got {type(trajectory).__name__}")
        if reference is None:
            check_trajectory_frames(trajectory, f)
        trajectory.masks(*size)  # every region must cover a cell of the latent grid
    if reference is not None:
        reference = np.asarray(reference)
        if reference.ndim != 4 or len(reference) < f or reference.shape[-1] != 3:
            raise ControlError(f"the reference video has shape {reference.shape}; the run needs (F >= {f}, H, W, 3)"
                               " (read any clip with moft.read_video(path, num_frames=F, size=(H, W)))")
        reference = reference[:f]
    copied = None
    if reference is not None and run.guidance.transfer == "drag":  # the clip's measured motion, dragged
        try:
            trajectory = copied = transfer_trajectory(reference, trajectory)
        except TransferError as exc:
            raise ControlError(str(exc)) from None
        reference = None
    if (run.guidance.iterates and target is None and reference is None and run.guidance.points != "dift"
            and (trajectory is None or channels is None)):
        raise ControlError("a target from a trajectory needs the trajectory and motion channels")
    try:
        run.guidance.check_frames(f)
    except GuidanceError as exc:
        raise ControlError(str(exc)) from None
    if run.guidance.needs_source and trajectory is None:
        g = run.guidance
        raise ControlError(f"keep={g.keep!r} / start={g.start!r} need a trajectory (the region that moves)")
    image = check_image(pipe, image, h, w, fit, error=ControlError)
    plan = ControlPlan(prompt, run, steps, seed, gain, reference_timestep, (f, h, w), size, trajectory, channels,
                       reference, target, init_latents, keep_source, image, points, copied)
    if plan.drags or plan.reference is not None or plan.guidance.start == "proxy":
        try:
            check_inverts(pipe)
        except InversionError as exc:
            raise ControlError(str(exc)) from None
    return plan


def points_request(trajectory, mode: str, frames: int, size: tuple[int, int], time_grid: list[int]) -> tuple:
    """A control run's trajectory and point request from a ``Trajectory`` or point ``Tracks``.

    Example:
        >>> t = Tracks(np.array([[[4.0, 8.0], [12.0, 8.0]]]), np.ones((1, 2), bool), (16, 16))
        >>> traj, req = points_request(t, "paper", 2, (32, 32), [0, 1])    # drawn on 16x16, made at 32x32
        >>> len(traj.regions), req.points[1, 0].tolist()
        (1, [24.5, 16.5])

    Tracks become one point region per track (``tracks_trajectory``: what a drag target moves);
    a trajectory's point regions give the tracks. Pixels are of the output frame ``size`` (tracks of
    another ``Tracks.size`` are rescaled to it). On image-to-video they will be of the image (not yet:
    moft has no I2V pipeline).

    Args:
        trajectory: a ``Trajectory``, ``Tracks`` or None.
        mode: ``GuidanceConfig.points``; ``"off"`` makes no request.
        frames: video frames of the run (tracks must have as many).
        size: ``(W, H)`` of the output frame.
        time_grid: the video frame of each latent frame (``latent_time_grid``).

    Returns:
        ``(trajectory, PointRequest or None)``.
    """
    tracks = None
    if isinstance(trajectory, Tracks):
        if trajectory.num_frames != frames:
            raise ControlError(f"the tracks have {trajectory.num_frames} frames; this run makes {frames} "
                               f"(read them with moft.read_tracks(path, num_frames={frames}))")
        tracks = trajectory if tuple(trajectory.size) == tuple(size) else rescale(trajectory, size)
        trajectory = tracks_trajectory(tracks)
    elif isinstance(trajectory, Trajectory):  # anything else: plan_control says what it must be
        tracks = trajectory_tracks(trajectory, size)
    if mode == "off":
        return trajectory, None
    if tracks is None:
        raise ControlError(f"points={mode!r} needs points: a track file or point regions in the trajectory")
    return trajectory, point_request(tracks.points, tracks.visible, size, time_grid)


def make_target(pipe, plan: ControlPlan, progress=None) -> tuple[Target | None, SampleResult | None,
                                                                 np.ndarray | None, Keep | None]:
    """The plan's target (``moft.method.control_target.build_target``), with the unguided source sample
    and drag proxy a drag target or a keep lever is made from, and the keep levers' ``Keep``
    (``moft.method.keep``, None when they are off): ``(target, source or None, proxy or None, keep)``.
    Without iterating guidance (``iterations=0``, ``method="cut-drag"``) there is no target."""
    phase = _phases(progress)
    g = plan.guidance
    source = frames = log = None
    if plan.needs_source:
        log = LatentLog() if g.needs_source else None  # the source's latents after every step, for the keep levers
        source = sample(pipe, plan.prompt, seed=plan.seed, steps=plan.steps, guidance_scale=plan.settings.guidance_scale,
                        num_frames=plan.size[0], latents=plan.init_latents, progress=phase("source"), callback=log,
                        image=plan.image)
        frames = source.frames  # (F, H, W, 3) in [0, 1]
        log = log.started(source.initial_latents) if log is not None else None
    elif g.needs_source:  # an image's proxy start alone: the run's own noise is all it needs
        f, h, w = plan.size
        noise = plan.init_latents if plan.init_latents is not None else initial_noise(
            pipe, num_frames=f, height=h, width=w, seed=plan.seed)
        log = LatentLog(noise)
    if plan.from_image:  # the image itself, still: its regions are dragged
        frames = still_frames(plan.image, plan.size[0])  # (F, H, W, 3)
    # the regions (a point grown into its object), the proxy a drag target inverts (F, H, W, 3), the keep levers
    trajectory, proxy, keep = drag_inputs(pipe, g, plan.trajectory, frames, steps=plan.steps, size=plan.size[1:],
                                          latent_size=plan.latent_size, log=log)
    if not plan.guided or plan.target is not None or g.points == "dift":  # "dift": the point loss alone, no target
        return plan.target if plan.guided else None, source, proxy, keep
    pictured = (image_conditioning(pipe, plan.image, num_frames=plan.size[0], seed=plan.seed)  # the draws sample makes
                if plan.image is not None else None)
    target = build_target(pipe, trajectory, plan.channels, kind=plan.settings.target_kind, steps=plan.steps,
                          guidance=g, video_size=plan.size, reference=plan.reference, source=frames,
                          proxy=proxy, gain=plan.gain, timestep=plan.reference_timestep, progress=phase("invert"),
                          image_cond=pictured)
    return target, source, proxy, keep


def _phases(progress):
    """``phase(name)``: a ``progress(done, total)`` that reports ``progress(done, total, name)``."""
    return (lambda name: (lambda done, total: progress(done, total, name))) if progress else (lambda name: None)


def run_control(pipe, plan: ControlPlan, progress=None) -> ControlResult:
    """Build the plan's target (``make_target``) and make the guided video.

    Example:
        >>> res = run_control(pipe, plan_control(pipe, traj, prompt="a red disk", channels=channels))  # doctest: +SKIP
    """
    target, source, proxy, keep = make_target(pipe, plan, progress)
    g, f = plan.guidance, plan.size[0]
    out = sample(pipe, plan.prompt, seed=plan.seed, steps=plan.steps, guidance_scale=plan.settings.guidance_scale,
                 num_frames=f, latents=source.initial_latents if source is not None else plan.init_latents,
                 target=target if plan.guided else None, guidance=g if plan.guided else None,
                 keep_source=plan.keep_source and source is None, progress=_phases(progress)("guide"),
                 image=plan.image, keep=keep, points=plan.points)
    if plan.keep_source and source is not None:
        out.source_frames = source.frames  # the drag target's unguided video: the same noise, already made
    report = {
        "prompt": plan.prompt, "seed": plan.seed, "steps": plan.steps, "guidance_scale": plan.settings.guidance_scale,
        "frames": f, "height": plan.size[1], "width": plan.size[2],
        # the loss weight in force (a null weight in the settings means 6 for one region, 8 for several)
        "guidance": dict(config_dict(g), weight=g.resolved_weight(len(target.masks)) if target is not None else g.weight),
        "gain": plan.gain,
        "target": {k: v for k, v in target.meta.items() if k != "trajectory"} if target is not None else None,
        "channels_digest": plan.channels.digest() if plan.channels is not None else None,
        "image": {"height": plan.image.shape[0], "width": plan.image.shape[1]} if plan.image is not None else None,
        "losses": out.losses, "counts": out.counts, "seconds": out.seconds,
        "points": None if plan.points is None else {"mode": g.points, "tracks": int(plan.points.points.shape[1])},
        # transfer "drag": each region's path measured in the reference clip (frame fractions per frame)
        "copied_paths": None if plan.copied is None else [r.path.tolist() for r in plan.copied.regions],
        **placement(pipe),  # device, dtype, offload, torch
    }
    return ControlResult(out.frames, out.source_frames, target, out, report, proxy)


def control(pipe, trajectory=None, *, prompt: str, channels: MotionChannels | None = None,
            reference: np.ndarray | None = None, target: Target | None = None, seed: int = 0, steps: int = 25,
            guidance_scale: float | None = None, guidance: GuidanceConfig | None = None,
            init_latents: torch.Tensor | None = None, keep_source: bool = False, gain: float = 1.0,
            reference_timestep: int = 200, target_kind: str | None = None, progress=None,
            image: np.ndarray | None = None, fit: str = "crop") -> ControlResult:
    """Steer a generation's motion: ``run_control(pipe, plan_control(pipe, ...))``.

    Args:
        pipe: a diffusers text-to-video pipeline.
        trajectory: a parsed ``Trajectory`` (regions and motion; with ``reference`` it gives the regions
            only), or point ``Tracks`` (``moft.read_tracks``; pixels of their ``size``, moved to the
            output frame): point drag, one point region per track (``points_request``).
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
        image: ``(H, W, 3)`` pixels of any size (``moft.read_image``) for an image-to-video model: the video
            starts from it (fitted by ``fit``: ``crop``, ``resize`` or ``pad``); a drag target drags its regions,
            so no unguided video is made first.
        progress: ``progress(done, total, phase)`` for every long phase, ``phase`` one of ``"source"``
            (the unguided video a drag target starts from), ``"invert"`` (inverting the reference or
            the drag proxy) and ``"guide"`` (the guided sampling).

    Raises:
        ControlError: a setting that cannot work, init latents of another model or not finite, a
            trajectory of another frame count; ``ChannelsError``: channels of another model or with
            bad indices. All before any model work (``plan_control``).
    """
    plan = plan_control(pipe, trajectory, prompt=prompt, channels=channels, reference=reference, target=target,
                        seed=seed, steps=steps, guidance_scale=guidance_scale, guidance=guidance,
                        init_latents=init_latents, keep_source=keep_source, gain=gain,
                        reference_timestep=reference_timestep, target_kind=target_kind, image=image, fit=fit)
    return run_control(pipe, plan, progress)

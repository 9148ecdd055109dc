"""The guided sampler: classifier-free guidance plus MOFT latent optimisation (paper Alg. 1).

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()                                               # doctest: +SKIP
    >>> out = moft.sample(pipe, "a red disk", seed=0)  # unguided  # doctest: +SKIP
    >>> out = moft.sample(pipe, "a red disk", seed=0, target=target)  # guided  # doctest: +SKIP
    >>> out.frames.shape, out.losses[:2]  # (F, H, W, 3) in [0, 1]; loss per guided iteration  # doctest: +SKIP

The scheduler is the one ``moft.models.pipeline.sampling_scheduler`` names: DDIM for U-Nets (the paper's),
the pipeline's own for DiTs (flow matching Euler or UniPC for Wan, v-prediction DDIM for CogVideoX);
classifier-free guidance is run as the stock pipeline runs it (one ``[uncond, cond]`` batch, or
Wan's two passes). Without a target the loop is the stock pipeline's, step for step.

Per denoising step ``i`` (official code, ``AnimationMotionPipeline.__call__``):
    1. if shared K/V is on and ``i`` is guided: the unguided *source* branch runs a CFG pass that
       records spatial self-attention inputs (and takes its own DDIM step);
    2. if ``i`` is guided: ``iterations`` times, run the denoiser on the conditional prompt only,
       stopping after the captured block, compute the MOFT loss against the target, and move the
       latents ``z <- z - step_size * grad`` (gradient zeroed outside the regions if masking is on);
    3. a plain CFG prediction on the updated latents and a scheduler step.
Before the first guided step the source branch equals the guided one, so it is only run from
then on (and to the end with ``keep_source=True``), with its own copy of the scheduler.

The loop is short, in k-diffusion's manner: per step, ``z = guide(net, z, t, i, sched)`` (``Guide``:
steps 1 and 2, None without a target), then ``z = sched.step(den(net, z, t), t, z)`` with ``den`` a
``CFGDenoiser`` (the conditioning: the prompt with CFG, and an image-to-video pipeline's image, see
its docstring), then the callbacks. All of ``sample``'s arguments are checked
first (``check_sample``: ``SamplerError``, one line, before any model work).

Step 2 is ``guidance_step(net, z, t, i, state)``: one function of the latents and a small
``GuidanceState`` (target, settings, the denoiser wrapper, the loss log). ``sample(..., callback=f)``
calls ``f(info)`` after every step with ``info = {"i", "t", "total", "latents", "losses"}`` (the
step's new loss records), as k-diffusion's ``callback``. ``sample(..., keep=k)`` (``moft.method.keep``)
skips the steps before ``k.first``, starts there from ``k.start`` and sets ``z = k(i, z)`` after each
step (the kept background, the region's clock); without it the loop is unchanged.
"""

from __future__ import annotations

import copy
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange

from ..models.adapters import architecture_of, call_denoiser
from ..models.device import execution_device
from ..models.image import (ImageInputError, frame_guidance_scale, image_conditioning, requires_image,
                            unconditional_image, with_first_frame)
from .capture import capture
from .features import moft, region_mean
from .points import PointRequest, point_gradient_mask, point_loss, point_schedule
from ..models.latents import decode_latents, initial_noise, text_conditioning
from ..models.pipeline import (FramesError, check_frames, default_guidance_scale, default_video_size, denoiser,
                                denoiser_at, denoisers, latent_channels, latent_frames, max_steps, pipeline_site,
                                sampling_scheduler, temporal_scale, vae_scale)
from .settings import (DISTANCES, MAX_SEED, MAX_STEPS, OPTIMIZERS, GuidanceConfig,  # noqa: F401  (re-exported)
                       SamplerError, check_integer, check_number, config_dict)
from .shared_kv import SharedKV


ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


class GuidanceDiverged(ValueError):
    """A guidance step left non-finite latents (the step size is too large for this model)."""


@dataclass
class SampleResult:
    """Output of ``sample``.

    Attributes:
        frames: ``(F, H, W, 3)`` float32 in [0, 1] (first video of the batch).
        latents: ``(1, F, C, h, w)`` final latents.
        initial_latents: ``(1, F, C, h, w)`` the starting noise (save it to edit the same video later).
        source_frames: the unguided video from the same noise (``keep_source=True``), else None.
        losses: one dict per guided iteration: ``step``, ``timestep``, ``iteration``, ``loss``, ``regions``.
        counts: denoiser ``forwards`` (CFG pairs count 2) and ``backwards``.
        seconds: wall time of the denoising loop.
        features: ``{site: (1, F, C, H, W)}`` of the conditional branch at ``capture_at`` (else empty).
    """

    frames: np.ndarray
    latents: torch.Tensor
    initial_latents: torch.Tensor
    source_frames: np.ndarray | None = None
    losses: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    features: dict = field(default_factory=dict)


def guidance_loss(feat: torch.Tensor, target, loss_kind: str, distance: str = "l2") -> tuple[torch.Tensor, list[float]]:
    """Loss of generated MOFT against a target, summed over regions (unweighted).

    Example:
        >>> from moft.method.targets import Target
        >>> masks = torch.ones(1, 2, 2, dtype=torch.bool)
        >>> target = Target(torch.zeros(1, 3, 4), masks, None, maps=torch.ones(1, 3, 4, 2, 2))
        >>> float(guidance_loss(torch.zeros(1, 3, 4, 2, 2), target, "per_position")[0])  # sqrt(3 * 4)
        3.464...
        >>> round(float(guidance_loss(5 * torch.ones(1, 3, 4, 2, 2), target, "per_position", "cosine")[0]), 6)  # same direction
        0.0

    Args:
        feat: ``(1, F, d, h, w)`` MOFT of the conditional branch.
        target: a ``Target`` (for one timestep: ``Target.at``).
        loss_kind: ``"region_mse"`` or ``"per_position"``.
        distance: ``"l2"`` (squared error of the region-mean curves, or the L2 distance of each
            position's ``(F, d)`` MOFT) or ``"cosine"`` (``1 - cos`` of the same vectors).

    Returns:
        The total loss and the per-region values.
    """
    per_region = []
    for r, mask in enumerate(target.masks.to(feat.device)):
        if loss_kind == "region_mse":
            gen, ref = region_mean(feat, mask)[0], target.curves[r].to(feat)  # (F, d)
            if distance == "cosine":
                per_region.append(1 - torch.nn.functional.cosine_similarity(gen.flatten(), ref.flatten(), dim=0))
            else:
                per_region.append(torch.nn.functional.mse_loss(gen, ref))
        else:
            ref = (target.maps[r] if target.maps is not None else
                   target.curves[r][..., None, None].expand(*feat.shape[1:])).to(feat)  # (F, d, h, w)
            if distance == "cosine":
                gen_v = rearrange(feat[0], "f d h w -> (f d) h w")
                dist = 1 - torch.nn.functional.cosine_similarity(gen_v, rearrange(ref, "f d h w -> (f d) h w"),
                                                                 dim=0, eps=1e-8)  # (h, w)
            else:
                dist = (feat[0] - ref).pow(2).sum(dim=(0, 1)).add(1e-12).sqrt()  # (h, w)
            per_region.append(dist[mask].mean())
    total = torch.stack(per_region).sum()
    return total, [float(v.detach()) for v in per_region]


def latent_update(grad: torch.Tensor, config: GuidanceConfig, step_size: float, moments: dict) -> torch.Tensor:
    """The change ``delta`` (``z <- z - delta``) the optimiser makes of a gradient.

    Example:
        >>> g = torch.tensor([3.0, 4.0])
        >>> latent_update(g, GuidanceConfig(optimizer="sgd"), 0.5, {})
        tensor([1.5000, 2.0000])
        >>> latent_update(g, GuidanceConfig(optimizer="normalized"), 0.5, {})  # length 0.5
        tensor([0.3000, 0.4000])
        >>> latent_update(g, GuidanceConfig(optimizer="adam"), 0.1, {})  # first Adam step: lr * sign
        tensor([0.1000, 0.1000])

    Args:
        grad: the (masked) gradient of the weighted loss in the latents.
        config: its ``optimizer``.
        step_size: ``eta`` at this step (``GuidanceConfig.step_size_at``).
        moments: Adam's state ``{"m", "v", "n"}`` (filled in place; empty to restart).
    """
    if config.optimizer == "sgd":
        return step_size * grad
    if config.optimizer == "normalized":
        return step_size * grad / grad.norm().clamp_min(1e-12)
    (b1, b2), n = ADAM_BETAS, moments.get("n", 0) + 1
    m = b1 * moments.get("m", torch.zeros_like(grad)) + (1 - b1) * grad
    v = b2 * moments.get("v", torch.zeros_like(grad)) + (1 - b2) * grad * grad
    moments.update(m=m, v=v, n=n)
    return step_size * (m / (1 - b1 ** n)) / ((v / (1 - b2 ** n)).sqrt() + ADAM_EPS)


def gradient_mask(target, shape: torch.Size, mode: str) -> torch.Tensor | None:
    """Multiplier ``(1, F, 1, h, w)`` for the latent gradient, or None for no masking (Eq. 8)."""
    if mode == "off":
        return None
    union = target.masks.any(0).float()  # (h, w)
    f = shape[1]
    m = union.expand(f, *union.shape).clone()  # (F, h, w)
    if mode.startswith("first:"):
        m[int(mode[6:]):] = 1.0  # later frames keep their gradient (paper: clip the first N frames)
    return m[None, :, None]


@dataclass
class GuidanceState:
    """What ``guidance_step`` needs besides the latents; built once per guided sample.

    Attributes:
        target: the ``Target``.
        config: the ``GuidanceConfig``.
        cond / uncond: conditioning of the two CFG branches (``uncond`` None without CFG).
        site: capture site of the loss.
        weight: the resolved loss weight.
        grad_mask: ``(1, F, 1, h, w)`` gradient multiplier, or None.
        kv: the ``SharedKV`` in use, or None.
        points: the ``PointRequest`` of point drag, or None.
        point_site: capture site of the point loss.
        point_mask: ``(1, F, 1, h, w)`` gradient multiplier of the point loss, or None.
        losses: one record per iteration (appended by ``guidance_step``).
        counts: ``forwards`` and ``backwards`` of the denoiser.
        denoiser: the ``CFGDenoiser`` whose conditional pass the loss differentiates (default: one
            over ``cond``/``uncond``); it shares ``counts``.
    """

    target: object
    config: GuidanceConfig
    cond: dict
    uncond: dict | None
    site: str
    weight: float
    grad_mask: torch.Tensor | None = None
    kv: SharedKV | None = None
    points: PointRequest | None = None
    point_site: str | None = None
    point_mask: torch.Tensor | None = None
    losses: list = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {"forwards": 0, "backwards": 0})
    denoiser: "CFGDenoiser | None" = None

    def __post_init__(self):
        if self.denoiser is None:
            self.denoiser = CFGDenoiser(self.cond, self.uncond, 1.0, self.counts)
        self.counts = self.denoiser.counts


def _timestep(t) -> int | float:
    """A schedule entry as a plain number (DDPM timesteps are integers, flow timesteps are not)."""
    t = float(t)
    return int(t) if t.is_integer() else t


class CFGDenoiser:
    """The model output under classifier-free guidance, as the stock pipeline computes it: a denoiser
    wrapper in k-diffusion's manner (``CFGDenoiser``), called ``den(net, z, t)``.

    Example:
        >>> den = CFGDenoiser(*text_conditioning(pipe, "a red disk", "", 4.0), scale=4.0)   # doctest: +SKIP
        >>> out = den(pipe.unet, z, t)                      # (B, F, C, h, w) model output  # doctest: +SKIP

    ``uncond`` None: one conditional pass. Otherwise ``out_u + scale * (out_c - out_u)`` from one
    ``[uncond, cond]`` batch, or from two passes where the table says so (Wan); ``scale`` is a number or a
    ``(1, F, 1, 1, 1)`` scale per frame (SVD, ``moft.models.image.frame_guidance_scale``). ``watch`` (e.g. a
    ``capture``) is entered around the pass that carries the conditional branch only. ``counts``
    counts denoiser forwards (a CFG pair counts 2). ``scale_input``: the sampling scheduler's
    ``scale_model_input`` (SVD's Euler divides by ``sqrt(sigma^2 + 1)``; the identity elsewhere), applied to every
    pass, guidance's included (its gradient flows through it).

    The conditioning lives here, not in the loop: an image-to-video pipeline's image conditioning
    (``moft.models.image.image_conditioning``) rides in both ``cond`` and ``uncond`` as extra entries that
    ``call_denoiser`` applies (the image's latent as frame 0, or condition latents on channels; the unconditional
    branch's as the stock pipeline gives it, ``moft.models.image.unconditional_image``);
    guidance's loss forward (``conditional``) goes through the same ``forward``, so it sees the same
    conditioning.
    """

    def __init__(self, cond: dict, uncond: dict | None, scale, counts: dict | None = None, scale_input=None):
        self.cond, self.uncond, self.scale, self.scale_input = cond, uncond, scale, scale_input
        self.counts = counts if counts is not None else {"forwards": 0, "backwards": 0}

    def forward(self, net, z: torch.Tensor, t, cond: dict) -> torch.Tensor:
        """One denoiser pass on ``z`` ``(B, F, C, h, w)`` under ``cond`` (the place for extra conditioning), its
        input scaled by ``scale_input`` (the scheduler's ``scale_model_input``) where one is given."""
        return call_denoiser(net, self.scale_input(z, t) if self.scale_input is not None else z, t, cond)

    def both(self) -> dict:
        """The conditioning of one ``[uncond, cond]`` batch: tensors stacked on the batch, anything else (a
        ``SideCall``) the conditional branch's."""
        return {k: torch.cat([self.uncond[k], v]) if torch.is_tensor(v) else v for k, v in self.cond.items()}

    def conditional(self, net, z: torch.Tensor, t, both: bool = False) -> torch.Tensor:
        """The pass guidance differentiates: the conditional branch, or the whole ``[uncond, cond]``
        batch with ``both`` (the official code's loss forward)."""
        if both and self.uncond is not None:
            self.counts["forwards"] += 2
            return self.forward(net, torch.cat([z, z]), t, self.both())
        self.counts["forwards"] += 1
        return self.forward(net, z, t, self.cond)

    def __call__(self, net, z: torch.Tensor, t, watch=None) -> torch.Tensor:
        watch = watch if watch is not None else nullcontext()
        if self.uncond is None:
            self.counts["forwards"] += 1
            with watch:
                return self.forward(net, z, t, self.cond)
        self.counts["forwards"] += 2
        if architecture_of(net).cfg == "two_passes":
            with watch:
                out_c = self.forward(net, z, t, self.cond)
            out_u = self.forward(net, z, t, self.uncond)
        else:
            with watch:
                out_u, out_c = self.forward(net, torch.cat([z, z]), t, self.both()).chunk(2)
        return out_u + self.scale * (out_c - out_u)


def step_loss(features: dict, target, state: GuidanceState, losses: tuple[str, ...]) -> tuple[torch.Tensor, dict]:
    """The weighted loss of one guidance forward: the MOFT loss and/or the point loss (paper Eq. 9).

    Args:
        features: ``{site: (1, F, C, H, W)}`` captured with the graph kept.
        target: the ``Target`` at this timestep (None when only the point loss runs).
        state: its ``config``, ``weight``, ``site``, ``points`` and ``point_site``.
        losses: ``("moft",)``, ``("point",)`` or both.

    Returns:
        The weighted total and a record: ``loss`` (the unweighted MOFT loss, else the unweighted
        point loss), ``regions`` (per-region MOFT losses) and ``point`` (the point loss), each None
        where it did not run.
    """
    g, total, record = state.config, 0.0, {"regions": None, "point": None}
    if "moft" in losses:
        feat = moft(features[state.site].float(), target.channels, target.size, content_removal=target.content_removal)
        loss, record["regions"] = guidance_loss(feat, target, g.loss, g.distance)
        record["loss"] = float(loss.detach())
        total = total + state.weight * loss
    if "point" in losses:
        req = state.points
        feats = features[state.point_site][0].float()  # (F, C, H', W') raw features (DIFT: no content removal)
        loss = point_loss(feats, req.points.to(feats.device), req.visible.to(feats.device), req.size, g.point_radius)
        record["point"] = float(loss.detach())
        record.setdefault("loss", record["point"])
        total = total + g.point_weight * loss
    return total, record


def guidance_step(net, z: torch.Tensor, t, i: int, state: GuidanceState,
                  losses: tuple[str, ...] = ("moft",)) -> torch.Tensor:
    """``config.iterations`` optimiser steps on the latents at denoising step ``i``.

    Example:
        >>> state = GuidanceState(target, GuidanceConfig(), cond, None, "up_blocks.1", 6.0)  # doctest: +SKIP
        >>> z = guidance_step(pipe.unet, z, t, 3, state); state.losses[-1]["loss"]  # doctest: +SKIP

    Each iteration runs the denoiser on the conditional prompt (or the whole CFG batch with
    ``loss_batch="cfg"``), stopping after the captured block if ``early_exit``, takes the MOFT loss
    against the target (at ``t``: ``Target.at``) and its gradient in the latents, zeroed outside
    ``grad_mask``, and moves the latents by ``latent_update`` (sgd ``z <- z - step_size * grad``,
    normalised or Adam). With ``grad_every = k`` only every k-th iteration computes a gradient;
    the others reuse the last one (their loss record repeats its loss, ``"reused": True``).
    ``losses`` (``moft.method.points.point_schedule``) adds or swaps in the point loss, read at
    ``state.point_site`` in the same forward (``step_loss``); its gradient is masked by
    ``state.point_mask`` (with both losses: by the union of the two masks).

    Returns:
        The updated latents (detached).
    """
    g, target = state.config, state.target.at(t) if "moft" in losses else None
    sites = list(dict.fromkeys(([state.site] if "moft" in losses else [])
                               + ([state.point_site] if "point" in losses else [])))
    masks = [m for name, m in (("moft", state.grad_mask), ("point", state.point_mask)) if name in losses]
    mask = None if any(m is None for m in masks) else torch.stack(masks).amax(0)  # the union, or no masking
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(g.autocast)
    full = g.loss_batch == "cfg" and state.uncond is not None
    eta, moments = g.step_size_at(i), {}  # Adam restarts at every guided step
    grad = loss = record = None
    for it in range(g.iterations):
        reuse = it % g.grad_every != 0
        if not reuse:
            z = z.detach().requires_grad_(True)
            if state.kv is not None:
                state.kv.mode = "share"
            amp = torch.autocast(z.device.type, dtype=dtype) if dtype is not None else nullcontext()
            with torch.enable_grad():
                with amp, capture(net, sites, detach=False, stop=g.early_exit, select="cond" if full else None) as cap:
                    state.denoiser.conditional(net, z, t, both=full)
                loss, record = step_loss(cap.features, target, state, losses)
                (grad,) = torch.autograd.grad(loss, z)
            state.counts["backwards"] += 1
            if state.kv is not None:
                state.kv.mode = "off"
            if mask is not None:
                grad = grad * mask.to(grad)
        z = (z - latent_update(grad, g, eta, moments)).detach()
        state.losses.append({"step": i, "timestep": _timestep(t), "iteration": it, **record,
                             "grad_norm": float(grad.norm()), "reused": reuse})
    return z


def guided_timesteps(pipe, steps: int, config: GuidanceConfig) -> list:
    """The timesteps of the guided steps of a ``steps``-step schedule (where per-timestep targets are taken).

    Example:
        >>> guided_timesteps(pipe, 25, GuidanceConfig(steps=(3, 6)))   # DDIM, 25 of 1000  # doctest: +SKIP
        [879, 839, 799]
    """
    sched = sampling_scheduler(pipe)
    sched.set_timesteps(steps)
    return [_timestep(t) for t in sched.timesteps[config.steps[0]:config.steps[1]]]


def check_latents(pipe, latents, num_frames: int | None = None, height: int | None = None, width: int | None = None,
                  error: type = SamplerError) -> torch.Tensor:
    """Raise ``error`` (one line) unless ``latents`` is finite ``(1, F, C, h, w)`` noise for ``pipe``: its
    latent channels, the grid of ``height`` x ``width`` (default: the model's), ``num_frames`` video
    frames if given, else any count its VAE takes.

    Example:
        >>> from moft.models.tiny import build_tiny_animatediff
        >>> check_latents(build_tiny_animatediff(), torch.zeros(1, 8, 4, 8, 8))
        Traceback (most recent call last):
        moft.method.settings.SamplerError: init latents have shape (1, 8, 4, 8, 8); this model needs (B, F, C, h, w) = (1, 8, 4, 16, 16)
    """
    if not isinstance(latents, torch.Tensor):
        raise error(f"init latents must be a tensor, got {type(latents).__name__}")
    f, h, w = default_video_size(pipe)
    h, w, s = height or h, width or w, vae_scale(pipe)
    frames = latents.shape[1] if latents.ndim == 5 and latents.shape[1] > 0 else latent_frames(pipe, f)
    want = (1, int(frames), latent_channels(pipe), h // s, w // s)  # (B, F, C, h, w)
    if num_frames is not None:
        want = (1, latent_frames(pipe, num_frames), *want[2:])
    if tuple(latents.shape) != want:
        raise error(f"init latents have shape {tuple(latents.shape)}; this model needs (B, F, C, h, w) = {want}")
    video = (int(frames) - 1) * temporal_scale(pipe) + 1
    try:
        check_frames(pipe, video)
    except FramesError as exc:
        raise error(f"init latents have {frames} latent frames ({video} video frames), but {exc}; are they "
                    f"another model's?") from None
    if not torch.isfinite(latents).all():
        raise error("init latents contain NaN or inf")
    return latents


def check_sample(pipe, prompt, *, negative_prompt="", num_frames=None, height=None, width=None, steps=25,
                 guidance_scale=None, seed=0, latents=None, target=None, guidance=None) -> tuple[int, int, int]:
    """Raise ``SamplerError`` (one line) on ``sample``'s arguments that cannot run, before any model work;
    return the video size ``(F, H, W)``.

    Example:
        >>> from moft.models.tiny import build_tiny_animatediff
        >>> check_sample(build_tiny_animatediff(), "a red disk", steps=1001)
        Traceback (most recent call last):
        moft.method.settings.SamplerError: steps must be <= 1000 for this model's DDIMScheduler, got 1001
    """
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if not isinstance(text, str):
            raise SamplerError(f"{name} must be a string, got {type(text).__name__}")
    check_integer("steps", steps, 1, MAX_STEPS, error=SamplerError)
    most = max_steps(pipe)
    if most is not None and steps > most:
        raise SamplerError(f"steps must be <= {most} for this model's {type(sampling_scheduler(pipe)).__name__}, "
                           f"got {steps}")
    check_integer("seed", seed, 0, MAX_SEED, error=SamplerError)
    if guidance_scale is not None:
        check_number("guidance_scale", guidance_scale, lo=0.0, error=SamplerError)
    if guidance is not None and not isinstance(guidance, GuidanceConfig):
        raise SamplerError(f"guidance must be a GuidanceConfig, got {type(guidance).__name__}")
    f0, h0, w0 = default_video_size(pipe)
    size = {"num_frames": num_frames or f0, "height": height or h0, "width": width or w0}
    for name, value in size.items():
        check_integer(name, value, 1, error=SamplerError)
    s = vae_scale(pipe)
    if size["height"] % s or size["width"] % s:
        raise SamplerError(f"height and width must be multiples of {s} (the VAE's scale), got {size['height']}x{size['width']}")
    try:
        check_frames(pipe, size["num_frames"])
    except FramesError as exc:
        raise SamplerError(str(exc)) from None
    if latents is not None:
        check_latents(pipe, latents, height=size["height"], width=size["width"])
    if target is not None:
        if not all(hasattr(target, k) for k in ("masks", "curves", "at")):
            raise SamplerError(f"target must be a Target, got {type(target).__name__}")
        frames = latents.shape[1] if latents is not None else latent_frames(pipe, size["num_frames"])
        grid = (size["height"] // s, size["width"] // s) if latents is None else tuple(latents.shape[-2:])
        if target.num_frames != frames:
            raise SamplerError(f"target has {target.num_frames} frames, the video {frames} latent frames")
        if target.size != grid:
            raise SamplerError(f"target grid {target.size} differs from the latent grid {grid}")
    return size["num_frames"], size["height"], size["width"]


class Guide:
    """The step hook of a guided sample: before each model step, the unguided source branch (from the
    first guided step on; shared K/V records there) and the latent optimisation (``guidance_step``).

    Example:
        >>> guide = Guide(state, guided={3, 4}, keep_source=False)     # doctest: +SKIP
        >>> z = guide(pipe.unet, z, t, i, sched)                      # before the model step  # doctest: +SKIP
    """

    def __init__(self, state: GuidanceState, guided: set, keep_source: bool, schedule: list | None = None):
        self.state, self.guided, self.keep_source = state, guided, keep_source
        self.schedule = schedule  # the losses of each step (point_schedule); None: the MOFT loss at every guided step
        self.use_source = bool(guided) and (state.kv is not None or keep_source)
        self.z_src = self.sched_src = None

    def __call__(self, net, z: torch.Tensor, t, i: int, sched) -> torch.Tensor:
        state, kv = self.state, self.state.kv
        if self.use_source and self.z_src is None and i == min(self.guided):
            self.z_src, self.sched_src = z.clone(), copy.deepcopy(sched)  # the branches part here, each with its solver
        if self.z_src is not None and (i in self.guided or self.keep_source):
            if kv is not None:
                kv.mode = "record" if i in self.guided else "off"
            with torch.no_grad():
                out_src = state.denoiser(net, self.z_src, t)
            if kv is not None:
                kv.mode = "off"
            self.z_src = self.sched_src.step(out_src, t, self.z_src).prev_sample
        if i in self.guided:
            z = guidance_step(net, z, t, i, state, self.schedule[i] if self.schedule is not None else ("moft",))
            if not torch.isfinite(z).all():
                raise GuidanceDiverged(f"guidance diverged at step {i} (t = {_timestep(t)}): the latents are no "
                                       f"longer finite; lower step_size (now {state.config.step_size:g})")
        return z


def _schedule(g: GuidanceConfig, num_steps: int, target, points) -> list[tuple[str, ...]]:
    """The losses of each step (``point_schedule``), checked against what the run was given."""
    if g.points == "off":
        return point_schedule("off", num_steps, g.steps) if target is not None else [()] * num_steps
    if points is None:
        raise SamplerError(f"points={g.points!r} needs the requested points (sample(..., points=PointRequest))")
    schedule = point_schedule(g.points, num_steps, g.steps)
    if target is None and any("moft" in losses for losses in schedule):
        raise SamplerError(f"points={g.points!r} runs the MOFT loss at its first guided steps and needs a target")
    return schedule


def _prepare(stack: ExitStack, pipe, target, g: GuidanceConfig, den: CFGDenoiser, z: torch.Tensor,
             keep_source: bool, sched, points: PointRequest | None = None) -> Guide | None:
    """The ``Guide`` of a guided sample, its shared K/V and gradient checkpointing entered on ``stack``
    (left exactly as found on exit), or None without guidance."""
    schedule = _schedule(g, len(sched.timesteps), target, points)  # the losses of each step
    guided = {i for i, losses in enumerate(schedule) if losses} if g.iterates else set()
    if not guided:
        return None
    net = denoiser(pipe)
    state = GuidanceState(target, g, den.cond, den.uncond, g.site or pipeline_site(pipe),
                          g.resolved_weight(len(target.masks)) if target is not None else 0.0,
                          gradient_mask(target, z.shape, g.grad_mask) if target is not None else None,
                          counts=den.counts, denoiser=den)
    if points is not None and g.points != "off":
        if points.points.shape[0] != z.shape[1]:
            raise SamplerError(f"points are given at {points.points.shape[0]} frames, the video has {z.shape[1]} "
                               f"latent frames")
        state.points, state.point_site = points, g.point_site or state.site
        if g.grad_mask != "off":
            state.point_mask = point_gradient_mask(points, tuple(z.shape[-2:]), g.point_radius + 1.0)
    if g.shared_kv and architecture_of(net).spatial_self_attention is not None:
        state.kv = stack.enter_context(SharedKV(net))
    for each in denoisers(pipe) if g.checkpointing else []:
        if not getattr(each, "is_gradient_checkpointing", False):
            each.enable_gradient_checkpointing()
            stack.callback(each.disable_gradient_checkpointing)
    return Guide(state, guided, keep_source, schedule)


def sample(
    pipe,
    prompt: str,
    *,
    negative_prompt: str = "",
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    steps: int = 25,
    guidance_scale: float | None = None,
    seed: int = 0,
    latents: torch.Tensor | None = None,
    target=None,
    guidance: GuidanceConfig | None = None,
    keep_source: bool = False,
    capture_at: int | None = None,
    capture_site: str | None = None,
    progress=None,
    callback=None,
    image: np.ndarray | None = None, keep=None, points: PointRequest | None = None,
) -> SampleResult:
    """Generate a video with the model's sampler + CFG, optionally guiding its MOFT towards ``target``.

    Example:
        >>> out = sample(pipe, "a red disk", seed=0, steps=25, target=target)   # doctest: +SKIP

    Args:
        pipe: a diffusers text-to-video pipeline moft has an adapter for.
        prompt / negative_prompt: text conditioning.
        num_frames, height, width: video size in pixels and frames (default: the model's,
            ``moft.models.pipeline.default_video_size``); latents have ``moft.models.pipeline.latent_frames``.
        steps: denoising steps.
        guidance_scale: CFG scale (1 disables CFG); default: the model folder's ``moft.json``, else 7.5.
        seed: seeds the initial noise exactly as the stock pipeline does (after the draws an image-to-video
            pipeline makes for its image first: SVD's noise augmentation, CogVideoX's posterior sample).
        latents: ``(1, F, C, h, w)`` initial noise instead of ``seed``.
        target: a ``Target``; None samples without MOFT guidance.
        guidance: ``GuidanceConfig`` (defaults: the official code).
        keep_source: also decode the unguided video from the same noise.
        capture_at: step index at which to record ``capture_site`` features of the conditional
            branch (``SampleResult.features``), for ``moft extract --prompt``.
        capture_site: site for ``capture_at`` (default: the architecture's).
        progress: optional callable ``progress(i, total)``.
        callback: optional callable ``callback(info)`` after every step (see the module docstring).
        image: ``(H, W, 3)`` uint8 frame at the video's size, for an image-to-video pipeline (required
            there, refused elsewhere): the conditioning of ``moft.models.image.image_conditioning`` joins
            both CFG branches, and for first-frame models the video's frame 0 is the image.
        points: the requested points (``moft.method.points.PointRequest``) of ``guidance.points``.
        keep: a ``moft.method.keep.Keep`` (``keep_plan``): begin at its step ``first`` from its
            latents, and pass the latents through it after every step; None: the plain loop.

    Raises:
        SamplerError: an argument that cannot run (``check_sample``), before any model work.
        GuidanceDiverged: guidance left non-finite latents.
    """
    num_frames, height, width = check_sample(pipe, prompt, negative_prompt=negative_prompt, num_frames=num_frames,
                                             height=height, width=width, steps=steps, guidance_scale=guidance_scale,
                                             seed=seed, latents=latents, target=target, guidance=guidance)
    gen = torch.Generator("cpu").manual_seed(seed)  # the image's draws first (SVD, CogVideoX), then the noise
    pictured = _image_condition(pipe, image, num_frames, height, width, gen)
    if latents is None:
        latents = initial_noise(pipe, num_frames=num_frames, height=height, width=width, seed=seed, generator=gen,
                                steps=steps)
    z = latents.to(execution_device(pipe), torch.float32)  # (1, F, C, h, w): float32 whatever the denoiser's dtype
    sched = sampling_scheduler(pipe)
    sched.set_timesteps(steps)
    den = _denoiser(pipe, prompt, negative_prompt, guidance_scale, pictured, z.shape[1], sched)
    result = SampleResult(frames=None, latents=None, initial_latents=latents.detach().clone())
    t_start = time.perf_counter()
    with ExitStack() as stack:
        guide = _prepare(stack, pipe, target, guidance or GuidanceConfig(), den, z, keep_source, sched, points)
        losses = guide.state.losses if guide is not None else []
        for i, t in enumerate(sched.timesteps):
            logged = len(losses)
            if keep is not None and i < keep.first:
                continue  # the source already made these steps (moft.method.keep)
            z = keep.start.to(z) if keep is not None and i == keep.first else z  # where the run begins
            net = denoiser_at(pipe, t)  # one network, or Wan 2.2's expert for this noise level
            if guide is not None:
                z = guide(net, z, t, i, sched)
            with torch.no_grad():
                watch = _watch(net, den, capture_site) if i == capture_at else None
                z = sched.step(den(net, z, t, watch=watch), t, z).prev_sample
                z = keep(i, z) if keep is not None else z  # the region's clock, the kept background
            if watch is not None:
                result.features = dict(watch.features)
            if progress is not None:
                progress(i + 1, len(sched.timesteps))
            if callback is not None:
                callback({"i": i, "t": t, "total": len(sched.timesteps), "latents": z, "losses": losses[logged:]})
    result.seconds = time.perf_counter() - t_start
    z = with_first_frame(pictured, z)  # (1, F, C, h, w): frame 0 is the image's latent (first-frame I2V)
    result.latents, result.losses = z.detach(), losses
    result.frames = decode_latents(pipe, z)[0]
    if keep_source:
        z_src = guide.z_src if guide is not None else None
        z_src = with_first_frame(pictured, z_src) if z_src is not None else None
        result.source_frames = decode_latents(pipe, z_src)[0] if z_src is not None else result.frames.copy()
    result.counts.update(den.counts)
    return result


def _denoiser(pipe, prompt: str, negative_prompt: str, guidance_scale: float | None, pictured: dict, frames: int,
              sched) -> CFGDenoiser:
    """The run's ``CFGDenoiser``: the prompt's (and the image's) two branches, the scale (per frame for SVD), the
    scheduler's input scaling."""
    scale = default_guidance_scale(pipe) if guidance_scale is None else guidance_scale
    cond, uncond = text_conditioning(pipe, prompt, negative_prompt, scale)
    uncond = {**uncond, **unconditional_image(pipe, pictured)} if uncond is not None else None
    per_frame = frame_guidance_scale(pipe, scale, frames)
    per_frame = per_frame.to(execution_device(pipe)) if torch.is_tensor(per_frame) else per_frame
    return CFGDenoiser({**cond, **pictured}, uncond, per_frame, scale_input=getattr(sched, "scale_model_input", None))


def _image_condition(pipe, image, num_frames: int, height: int, width: int, generator) -> dict:
    """The image conditioning of an image-to-video pipeline ({} for text-to-video), or a one-line error."""
    if image is None:
        if requires_image(pipe):
            raise SamplerError(f"{type(pipe).__name__} animates an image: pass image=(H, W, 3) pixels")
        return {}
    image = np.asarray(image)
    if image.shape != (height, width, 3):
        raise SamplerError(f"image has shape {image.shape}; this run needs ({height}, {width}, 3) "
                           "(moft.models.image.fit_image makes it)")
    try:
        return image_conditioning(pipe, image, num_frames=num_frames, generator=generator)
    except ImageInputError as exc:
        raise SamplerError(str(exc)) from None


def _watch(net, den: CFGDenoiser, site: str | None):
    """A capture of the conditional branch's features (of an ``[uncond, cond]`` batch: its second half)."""
    batched = den.uncond is not None and architecture_of(net).cfg == "batch"
    return capture(net, site, detach=True, select="cond" if batched else None)

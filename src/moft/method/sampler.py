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

Step 2 is ``guidance_step(net, z, t, i, state)``: one function of the latents and a small
``GuidanceState`` (target, settings, conditioning, the loss log). ``sample(..., callback=f)`` calls
``f(info)`` after every step with ``info = {"i", "t", "total", "latents", "losses"}`` (the step's
new loss records), as k-diffusion's ``callback``.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from einops import rearrange

from ..models.adapters import architecture_of, call_denoiser
from .capture import capture
from .features import moft, region_mean
from ..models.latents import decode_latents, initial_noise, text_conditioning
from ..models.pipeline import (default_guidance_scale, default_video_size, denoiser, denoiser_at, denoisers, pipeline_site,
                       sampling_scheduler)
from .keep import KEEPS, METHODS, STARTS
from .shared_kv import SharedKV


class SamplerError(ValueError):
    """Sampling or guidance settings that cannot run (one-line message)."""


@dataclass
class GuidanceConfig:
    """Settings of MOFT guidance (defaults: the official code).

    Attributes:
        steps: ``(start, end)`` guided step indices, end exclusive (official ``[3, 12]`` of 25).
        iterations: gradient iterations per guided step (official 2).
        step_size: ``eta`` in ``z <- z - eta * grad`` (official 0.5).
        weight: loss weight; None picks 6 for one region, 8 for several (official demos).
        loss: ``"region_mse"`` (official: MSE of region-mean curves) or ``"per_position"``
            (paper Eq. 3: mean over region positions of the L2 distance).
        shared_kv: share spatial self-attention K/V from the unguided branch (official: on); only
            where the architecture has spatial self-attention (U-Nets; not DiTs' full 3-D attention).
        grad_mask: ``"all"`` (zero the gradient outside the regions on every frame, official),
            ``"first:N"`` (only on the first N frames, as the paper's text), or ``"off"``.
        early_exit: stop the loss forward after the captured block.
        checkpointing: enable the denoiser's gradient checkpointing during guidance.
        autocast: ``None``, ``"bfloat16"`` or ``"float16"`` for the loss forward.
        site: capture site (default: the architecture's ``up_blocks.1``).
        loss_batch: ``"cond"`` (the loss forward runs on the conditional prompt only) or ``"cfg"``
            (on the whole CFG batch, as the official code does; for benchmarks).
        optimizer: how a gradient becomes a latent update: ``"sgd"`` (``z <- z - eta * grad``,
            official), ``"normalized"`` (``z <- z - eta * grad / |grad|``: a step of length
            ``eta`` whatever the loss scale) or ``"adam"`` (Adam with ``lr = eta``, betas
            (0.9, 0.999), its moments restarted at every guided step; SMM, DiTFlow, FastVMT).
        step_size_end: the step size at the last guided step, ``step_size`` at the first and
            linear in between (a schedule over the guided steps); None keeps it constant.
        distance: ``"l2"`` (paper Eq. 3, official) or ``"cosine"`` (``1 - cos`` between the
            generated and the target MOFT, per position or between region-mean curves; DiTFlow's
            MOFT port): insensitive to the feature's scale.
        grad_every: a full gradient every ``grad_every``-th iteration; the iterations between
            reuse the last one (FastVMT recomputes every third); 1 = every iteration.
        target_mode: how a drag or reference target is read from its video (``control``,
            ``moft evaluate``): ``"inversion"`` (DDIM inversion, the paper) or ``"noise"`` (the
            video forward-noised to the timestep, one denoiser forward; FastVMT, FlowMotion).
        target_timesteps: ``"fixed"`` (one target at t = 200, the official step 5 of 25) or
            ``"guided"`` (one target at each guided step's timestep, compared at that step).
        keep: ``"off"`` or ``"latents"`` (outside the swept region, the latents are the unguided
            source's after every step before ``keep_until``; ``moft.method.keep``).
        keep_until: the step index where the background is released (None: kept to the end).
        start: ``"noise"`` (step 0), ``"source"`` (the source's latents at the first guided step)
            or ``"proxy"`` (the drag proxy noised to the first guided step; Time-to-Move).
        release: with ``start="proxy"``, the region follows the noised proxy until this step
            index (the "dual clock"); None: only the start.
        method: ``"gradient"`` (MOFT guidance) or ``"cut-drag"`` (the proxy start alone, no
            gradient iterations; needs ``start="proxy"``).
    """

    steps: tuple[int, int] = (3, 12)
    iterations: int = 2
    step_size: float = 0.5
    weight: float | None = None
    loss: str = "region_mse"
    shared_kv: bool = True
    grad_mask: str = "all"
    early_exit: bool = True
    checkpointing: bool = False
    autocast: str | None = None
    site: str | None = None
    loss_batch: str = "cond"
    optimizer: str = "sgd"
    step_size_end: float | None = None
    distance: str = "l2"
    grad_every: int = 1
    target_mode: str = "inversion"
    target_timesteps: str = "fixed"
    keep: str = "off"
    keep_until: int | None = None
    start: str = "noise"
    release: int | None = None
    method: str = "gradient"

    def __post_init__(self):
        for name, allowed in (("optimizer", OPTIMIZERS), ("distance", DISTANCES),
                              ("target_mode", ("inversion", "noise")), ("target_timesteps", ("fixed", "guided")),
                              ("keep", KEEPS), ("start", STARTS), ("method", METHODS)):
            if getattr(self, name) not in allowed:
                raise SamplerError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if isinstance(self.grad_every, bool) or not isinstance(self.grad_every, int) or self.grad_every < 1:
            raise SamplerError(f"grad_every must be a whole number >= 1, got {self.grad_every!r}")
        for name in ("keep_until", "release"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SamplerError(f"{name} must be a whole number >= 0 or None, got {value!r}")
        if (self.method == "cut-drag" or self.release is not None) and self.start != "proxy":
            raise SamplerError(f"method 'cut-drag' and release need start 'proxy', got start {self.start!r}")
        if self.step_size_end is not None and not (math.isfinite(self.step_size_end) and self.step_size_end > 0):
            raise SamplerError(f"step_size_end must be a finite number > 0, got {self.step_size_end!r}")
        if self.loss_batch not in ("cond", "cfg"):
            raise SamplerError(f"loss_batch must be 'cond' or 'cfg', got {self.loss_batch!r}")
        if self.loss not in ("region_mse", "per_position"):
            raise SamplerError(f"loss must be 'region_mse' or 'per_position', got {self.loss!r}")
        if not (self.grad_mask in ("all", "off") or (self.grad_mask.startswith("first:")
                                                    and self.grad_mask[6:].isdigit())):
            raise SamplerError(f"grad_mask must be 'all', 'off' or 'first:N', got {self.grad_mask!r}")
        if self.autocast not in (None, "bfloat16", "float16"):
            raise SamplerError(f"autocast must be None, 'bfloat16' or 'float16', got {self.autocast!r}")
        if len(self.steps) != 2 or self.iterations < 0 or self.steps[0] > self.steps[1]:
            raise SamplerError(f"bad guidance schedule steps={self.steps} iterations={self.iterations}")

    def resolved_weight(self, regions: int) -> float:
        return self.weight if self.weight is not None else (6.0 if regions == 1 else 8.0)

    def step_size_at(self, i: int) -> float:
        """The step size at denoising step ``i``: ``step_size`` at the first guided step, linear to
        ``step_size_end`` at the last (``steps[1] - 1``).

        Example:
            >>> g = GuidanceConfig(steps=(3, 12), step_size=2.0, step_size_end=0.5)
            >>> [g.step_size_at(i) for i in (3, 7, 11)]
            [2.0, 1.25, 0.5]
        """
        start, end = self.steps
        if self.step_size_end is None or end - 1 <= start:
            return self.step_size
        frac = (i - start) / (end - 1 - start)
        return self.step_size + frac * (self.step_size_end - self.step_size)

    @property
    def iterates(self) -> bool:
        """Whether guidance runs gradient iterations (not ``method="cut-drag"``, ``iterations > 0``)."""
        return self.method == "gradient" and self.iterations > 0

    @property
    def needs_source(self) -> bool:
        """Whether a ``keep`` lever needs the unguided source's latents (``moft.method.keep``)."""
        return self.keep != "off" or self.start != "noise"


OPTIMIZERS = ("sgd", "normalized", "adam")
DISTANCES = ("l2", "cosine")
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
        losses: one record per iteration (appended by ``guidance_step``).
        counts: ``forwards`` and ``backwards`` of the denoiser.
    """

    target: object
    config: GuidanceConfig
    cond: dict
    uncond: dict | None
    site: str
    weight: float
    grad_mask: torch.Tensor | None = None
    kv: SharedKV | None = None
    losses: list = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {"forwards": 0, "backwards": 0})


def _timestep(t) -> int | float:
    """A schedule entry as a plain number (DDPM timesteps are integers, flow timesteps are not)."""
    t = float(t)
    return int(t) if t.is_integer() else t


def predict(net, z: torch.Tensor, t, cond: dict, uncond: dict | None, scale: float, counts: dict,
            watch=None) -> torch.Tensor:
    """The classifier-free-guided model output ``(B, F, C, h, w)``, as the stock pipeline computes it.

    ``uncond`` None: one conditional pass. Otherwise ``out_u + scale * (out_c - out_u)`` from one
    ``[uncond, cond]`` batch, or from two passes where the table says so (Wan). ``watch`` (e.g. a
    ``capture``) is entered around the pass that carries the conditional branch only.
    """
    watch = watch if watch is not None else nullcontext()
    if uncond is None:
        counts["forwards"] += 1
        with watch:
            return call_denoiser(net, z, t, cond)
    counts["forwards"] += 2
    if architecture_of(net).cfg == "two_passes":
        with watch:
            out_c = call_denoiser(net, z, t, cond)
        out_u = call_denoiser(net, z, t, uncond)
    else:
        both = {k: torch.cat([uncond[k], cond[k]]) for k in cond}
        with watch:
            out_u, out_c = call_denoiser(net, torch.cat([z, z]), t, both).chunk(2)
    return out_u + scale * (out_c - out_u)


def guidance_step(net, z: torch.Tensor, t, i: int, state: GuidanceState) -> torch.Tensor:
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

    Returns:
        The updated latents (detached).
    """
    g, target = state.config, state.target.at(t)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(g.autocast)
    full = g.loss_batch == "cfg" and state.uncond is not None
    eta, moments = g.step_size_at(i), {}  # Adam restarts at every guided step
    grad = loss = per_region = None
    for it in range(g.iterations):
        reuse = it % g.grad_every != 0
        if not reuse:
            z = z.detach().requires_grad_(True)
            if state.kv is not None:
                state.kv.mode = "share"
            amp = torch.autocast(z.device.type, dtype=dtype) if dtype is not None else nullcontext()
            with torch.enable_grad():
                with amp, capture(net, state.site, detach=False, stop=g.early_exit, select="cond" if full else None) as cap:
                    if full:
                        call_denoiser(net, torch.cat([z, z]), t,
                                      {k: torch.cat([state.uncond[k], state.cond[k]]) for k in state.cond})
                    else:
                        call_denoiser(net, z, t, state.cond)
                state.counts["forwards"] += 2 if full else 1
                feat = moft(cap.output.float(), target.channels, target.size, content_removal=target.content_removal)
                loss, per_region = guidance_loss(feat, target, g.loss, g.distance)
                (grad,) = torch.autograd.grad(state.weight * loss, z)
            state.counts["backwards"] += 1
            if state.kv is not None:
                state.kv.mode = "off"
            if state.grad_mask is not None:
                grad = grad * state.grad_mask.to(grad)
        z = (z - latent_update(grad, g, eta, moments)).detach()
        state.losses.append({"step": i, "timestep": _timestep(t), "iteration": it, "loss": float(loss.detach()),
                             "regions": per_region, "grad_norm": float(grad.norm()), "reused": reuse})
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
    keep=None,
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
        seed: seeds the initial noise exactly as the stock pipeline does.
        latents: ``(1, F, C, h, w)`` initial noise instead of ``seed``.
        target: a ``Target``; None samples without MOFT guidance.
        guidance: ``GuidanceConfig`` (defaults: the official code).
        keep_source: also decode the unguided video from the same noise.
        capture_at: step index at which to record ``capture_site`` features of the conditional
            branch (``SampleResult.features``), for ``moft extract --prompt``.
        capture_site: site for ``capture_at`` (default: the architecture's).
        progress: optional callable ``progress(i, total)``.
        callback: optional callable ``callback(info)`` after every step (see the module docstring).
        keep: a ``moft.method.keep.Keep`` (``keep_plan``): begin at its step ``first`` from its
            latents, and pass the latents through it after every step; None: today's loop.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SamplerError(f"steps must be a whole number >= 1, got {steps!r}")
    if guidance_scale is not None and not math.isfinite(guidance_scale):
        raise SamplerError(f"guidance_scale must be finite, got {guidance_scale!r}")
    net = denoiser(pipe)
    sched = sampling_scheduler(pipe)
    g = guidance or GuidanceConfig()
    f0, h0, w0 = default_video_size(pipe)
    num_frames, height, width = num_frames or f0, height or h0, width or w0
    if latents is None:
        latents = initial_noise(pipe, num_frames=num_frames, height=height, width=width, seed=seed)
    z = latents.to(net.device, net.dtype)
    if target is not None and target.num_frames != z.shape[1]:
        raise SamplerError(f"target has {target.num_frames} frames, the video {z.shape[1]} latent frames")
    if target is not None and target.size != tuple(z.shape[-2:]):
        raise SamplerError(f"target grid {target.size} differs from the latent grid {tuple(z.shape[-2:])}")
    guidance_scale = default_guidance_scale(pipe) if guidance_scale is None else guidance_scale
    cond, uncond = text_conditioning(pipe, prompt, negative_prompt, guidance_scale)
    sched.set_timesteps(steps)
    guided = set(range(*g.steps)) if target is not None and g.iterates else set()
    share = bool(guided) and g.shared_kv and architecture_of(net).spatial_self_attention is not None
    state = GuidanceState(target, g, cond, uncond, g.site or pipeline_site(pipe),
                          g.resolved_weight(len(target.masks)) if target is not None else 0.0,
                          gradient_mask(target, z.shape, g.grad_mask) if target is not None else None)
    counts = state.counts
    use_source = bool(guided) and (share or keep_source)
    result = SampleResult(frames=None, latents=None, initial_latents=latents.detach().clone())
    z_src = sched_src = None
    t_start = time.perf_counter()
    with ExitStack() as stack:
        state.kv = kv = stack.enter_context(SharedKV(net)) if share else None
        for each in denoisers(pipe) if guided and g.checkpointing else []:
            if not getattr(each, "is_gradient_checkpointing", False):
                each.enable_gradient_checkpointing()
                stack.callback(each.disable_gradient_checkpointing)
        for i, t in enumerate(sched.timesteps):
            logged = len(state.losses)
            if keep is not None and i < keep.first:
                continue  # the source already made these steps (moft.method.keep)
            if keep is not None and i == keep.first:
                z = keep.start.to(z)
            net = denoiser_at(pipe, t)  # one network, or Wan 2.2's expert for this noise level
            if use_source and z_src is None and i == min(guided):
                z_src, sched_src = z.clone(), copy.deepcopy(sched)  # the branches part here, each with its solver
            if z_src is not None and (i in guided or keep_source):
                if kv is not None:
                    kv.mode = "record" if i in guided else "off"
                with torch.no_grad():
                    out_src = predict(net, z_src, t, cond, uncond, guidance_scale, counts)
                if kv is not None:
                    kv.mode = "off"
                z_src = sched_src.step(out_src, t, z_src).prev_sample
            if i in guided:
                z = guidance_step(net, z, t, i, state)
                if not torch.isfinite(z).all():
                    raise GuidanceDiverged(f"guidance diverged at step {i} (t = {_timestep(t)}): the latents are no "
                                           f"longer finite; lower step_size (now {g.step_size:g})")
            with torch.no_grad():
                if i == capture_at:  # the conditional branch's features ([uncond, cond] batch: its second half)
                    batched = uncond is not None and architecture_of(net).cfg == "batch"
                    cap = capture(net, capture_site, detach=True, select="cond" if batched else None)
                    out = predict(net, z, t, cond, uncond, guidance_scale, counts, watch=cap)
                    result.features = dict(cap.features)
                else:
                    out = predict(net, z, t, cond, uncond, guidance_scale, counts)
                z = sched.step(out, t, z).prev_sample
                z = keep(i, z) if keep is not None else z
            if progress is not None:
                progress(i + 1, len(sched.timesteps))
            if callback is not None:
                callback({"i": i, "t": t, "total": len(sched.timesteps), "latents": z,
                          "losses": state.losses[logged:]})
    result.seconds = time.perf_counter() - t_start
    result.latents = z.detach()
    result.losses = state.losses
    result.frames = decode_latents(pipe, z)[0]
    if keep_source:
        result.source_frames = decode_latents(pipe, z_src)[0] if z_src is not None else result.frames.copy()
    result.counts.update(counts)
    return result


def config_dict(g: GuidanceConfig) -> dict:
    """JSON-ready settings."""
    return asdict(g)

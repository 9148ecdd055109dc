"""The guided sampler: classifier-free guidance plus MOFT latent optimisation (paper Alg. 1).

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()                                               # doctest: +SKIP
    >>> out = moft.sample(pipe, "a red disk", seed=0)  # unguided  # doctest: +SKIP
    >>> out = moft.sample(pipe, "a red disk", seed=0, target=target)  # guided  # doctest: +SKIP
    >>> out.frames.shape, out.losses[:2]  # (F, H, W, 3) in [0, 1]; loss per guided iteration  # doctest: +SKIP

The scheduler is the one ``moft.pipeline.sampling_scheduler`` names: DDIM for U-Nets (the paper's),
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

from .adapters import architecture_of, call_denoiser
from .capture import capture
from .features import moft, region_mean
from .latents import decode_latents, initial_noise, text_conditioning
from .pipeline import (default_guidance_scale, default_video_size, denoiser, denoiser_at, denoisers, pipeline_site,
                       sampling_scheduler)
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

    def __post_init__(self):
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


def guidance_loss(feat: torch.Tensor, target, loss_kind: str) -> tuple[torch.Tensor, list[float]]:
    """Loss of generated MOFT against a target, summed over regions (unweighted).

    Args:
        feat: ``(1, F, d, h, w)`` MOFT of the conditional branch.
        target: a ``Target``.
        loss_kind: ``"region_mse"`` or ``"per_position"``.

    Returns:
        The total loss and the per-region values.
    """
    per_region = []
    for r, mask in enumerate(target.masks.to(feat.device)):
        if loss_kind == "region_mse":
            gen = region_mean(feat, mask)[0]  # (F, d)
            per_region.append(torch.nn.functional.mse_loss(gen, target.curves[r].to(feat)))
        else:
            ref = (target.maps[r] if target.maps is not None else
                   target.curves[r][..., None, None].expand(*feat.shape[1:])).to(feat)  # (F, d, h, w)
            dist = (feat[0] - ref).pow(2).sum(dim=(0, 1)).add(1e-12).sqrt()  # (h, w)
            per_region.append(dist[mask].mean())
    total = torch.stack(per_region).sum()
    return total, [float(v.detach()) for v in per_region]


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
    """``config.iterations`` gradient steps ``z <- z - step_size * grad`` at denoising step ``i``.

    Example:
        >>> state = GuidanceState(target, GuidanceConfig(), cond, None, "up_blocks.1", 6.0)  # doctest: +SKIP
        >>> z = guidance_step(pipe.unet, z, t, 3, state); state.losses[-1]["loss"]  # doctest: +SKIP

    Each iteration runs the denoiser on the conditional prompt (or the whole CFG batch with
    ``loss_batch="cfg"``), stopping after the captured block if ``early_exit``, takes the MOFT loss
    against the target and its gradient in the latents, zeroed outside ``grad_mask``.

    Returns:
        The updated latents (detached).
    """
    g, target = state.config, state.target
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(g.autocast)
    full = g.loss_batch == "cfg" and state.uncond is not None
    for it in range(g.iterations):
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
            loss, per_region = guidance_loss(feat, target, g.loss)
            (grad,) = torch.autograd.grad(state.weight * loss, z)
        state.counts["backwards"] += 1
        if state.kv is not None:
            state.kv.mode = "off"
        if state.grad_mask is not None:
            grad = grad * state.grad_mask.to(grad)
        z = (z - g.step_size * grad).detach()
        state.losses.append({"step": i, "timestep": _timestep(t), "iteration": it, "loss": float(loss.detach()),
                             "regions": per_region, "grad_norm": float(grad.norm())})
    return z


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
) -> SampleResult:
    """Generate a video with the model's sampler + CFG, optionally guiding its MOFT towards ``target``.

    Example:
        >>> out = sample(pipe, "a red disk", seed=0, steps=25, target=target)   # doctest: +SKIP

    Args:
        pipe: a diffusers text-to-video pipeline moft has an adapter for.
        prompt / negative_prompt: text conditioning.
        num_frames, height, width: video size in pixels and frames (default: the model's,
            ``moft.pipeline.default_video_size``); latents have ``moft.pipeline.latent_frames``.
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
    guided = set(range(*g.steps)) if target is not None and g.iterations > 0 else set()
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

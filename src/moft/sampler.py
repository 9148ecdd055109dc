"""The guided DDIM sampler: classifier-free guidance plus MOFT latent optimisation (paper Alg. 1).

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()                                               # doctest: +SKIP
    >>> out = moft.sample(pipe, "a red disk", seed=0)                             # unguided
    >>> out = moft.sample(pipe, "a red disk", seed=0, target=target)              # guided
    >>> out.frames.shape, out.losses[:2]          # (F, H, W, 3) in [0, 1]; loss per guided iteration

Per denoising step ``i`` (official code, ``AnimationMotionPipeline.__call__``):
    1. if shared K/V is on and ``i`` is guided: the unguided *source* branch runs a CFG pass that
       records spatial self-attention inputs (and takes its own DDIM step);
    2. if ``i`` is guided: ``iterations`` times, run the denoiser on the conditional prompt only,
       stopping after the captured block, compute the MOFT loss against the target, and move the
       latents ``z <- z - step_size * grad`` (gradient zeroed outside the regions if masking is on);
    3. a plain CFG prediction on the updated latents and a DDIM step.
Before the first guided step the source branch equals the guided one, so it is only run from
then on (and to the end with ``keep_source=True``).
"""

from __future__ import annotations

import time
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .adapters import call_denoiser
from .capture import capture
from .features import moft, region_mean
from .latents import decode_latents, initial_noise, text_conditioning
from .models import ddim_scheduler, denoiser
from .shared_kv import SharedKV


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
        shared_kv: share spatial self-attention K/V from the unguided branch (official: on).
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
            raise ValueError(f"loss_batch must be 'cond' or 'cfg', got {self.loss_batch!r}")
        if self.loss not in ("region_mse", "per_position"):
            raise ValueError(f"loss must be 'region_mse' or 'per_position', got {self.loss!r}")
        if not (self.grad_mask in ("all", "off") or (self.grad_mask.startswith("first:")
                                                    and self.grad_mask[6:].isdigit())):
            raise ValueError(f"grad_mask must be 'all', 'off' or 'first:N', got {self.grad_mask!r}")
        if self.autocast not in (None, "bfloat16", "float16"):
            raise ValueError(f"autocast must be None, 'bfloat16' or 'float16', got {self.autocast!r}")
        if len(self.steps) != 2 or self.iterations < 0 or self.steps[0] > self.steps[1]:
            raise ValueError(f"bad guidance schedule steps={self.steps} iterations={self.iterations}")

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
    """

    frames: np.ndarray
    latents: torch.Tensor
    initial_latents: torch.Tensor
    source_frames: np.ndarray | None = None
    losses: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0


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


def _cfg(net, z, t, cond, uncond, scale, counts):
    """Classifier-free guided model output ``(B, F, C, h, w)`` from one batched pass."""
    if uncond is None:
        counts["forwards"] += 1
        return call_denoiser(net, z, t, cond)
    both = {k: torch.cat([uncond[k], cond[k]]) for k in cond}
    out = call_denoiser(net, torch.cat([z, z]), t, both)
    counts["forwards"] += 2
    out_u, out_c = out.chunk(2)
    return out_u + scale * (out_c - out_u)


def sample(
    pipe,
    prompt: str,
    *,
    negative_prompt: str = "",
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    steps: int = 25,
    guidance_scale: float = 7.5,
    seed: int = 0,
    latents: torch.Tensor | None = None,
    target=None,
    guidance: GuidanceConfig | None = None,
    keep_source: bool = False,
    capture_at: int | None = None,
    capture_site: str | None = None,
    progress=None,
) -> SampleResult:
    """Generate a video with DDIM + CFG, optionally guiding its MOFT towards ``target``.

    Example:
        >>> out = sample(pipe, "a red disk", seed=0, steps=25, target=target)   # doctest: +SKIP

    Args:
        pipe: a diffusers text-to-video pipeline with a DDPM-family scheduler (DDIM recommended).
        prompt / negative_prompt: text conditioning.
        num_frames, height, width: default: the model's (``channels.default_video_size``).
        steps: denoising steps.
        guidance_scale: CFG scale (1 disables CFG).
        seed: seeds the initial noise exactly as the stock pipeline does.
        latents: ``(1, F, C, h, w)`` initial noise instead of ``seed``.
        target: a ``Target``; None samples without MOFT guidance.
        guidance: ``GuidanceConfig`` (defaults: the official code).
        keep_source: also decode the unguided video from the same noise.
        capture_at: step index at which to record ``capture_site`` features of the conditional
            branch (``SampleResult.counts["features"]``), for ``moft extract --prompt``.
        capture_site: site for ``capture_at``.
        progress: optional callable ``progress(i, total)``.
    """
    from .channels import default_video_size

    net = denoiser(pipe)
    sched = ddim_scheduler(pipe)
    g = guidance or GuidanceConfig()
    f0, h0, w0 = default_video_size(pipe)
    num_frames, height, width = num_frames or f0, height or h0, width or w0
    if latents is None:
        latents = initial_noise(pipe, num_frames=num_frames, height=height, width=width, seed=seed)
    z = latents.to(net.device, net.dtype)
    if target is not None and target.num_frames != z.shape[1]:
        raise ValueError(f"target has {target.num_frames} frames, the video {z.shape[1]}")
    if target is not None and target.size != tuple(z.shape[-2:]):
        raise ValueError(f"target grid {target.size} differs from the latent grid {tuple(z.shape[-2:])}")
    cond, uncond = text_conditioning(pipe, prompt, negative_prompt, guidance_scale)
    sched.set_timesteps(steps)
    guided = set(range(*g.steps)) if target is not None and g.iterations > 0 else set()
    weight = g.resolved_weight(len(target.masks)) if target is not None else 0.0
    gmask = gradient_mask(target, z.shape, g.grad_mask) if target is not None else None
    use_source = bool(guided) and (g.shared_kv or keep_source)
    counts = {"forwards": 0, "backwards": 0}
    result = SampleResult(frames=None, latents=None, initial_latents=latents.detach().clone())
    z_src = None
    t_start = time.perf_counter()
    was_ckpt = getattr(net, "is_gradient_checkpointing", False)
    with ExitStack() as stack:
        kv = stack.enter_context(SharedKV(net)) if (guided and g.shared_kv) else None
        if guided and g.checkpointing and not was_ckpt:
            net.enable_gradient_checkpointing()
            stack.callback(net.disable_gradient_checkpointing)
        for i, t in enumerate(sched.timesteps):
            if use_source and z_src is None and i == min(guided):
                z_src = z.clone()
            if z_src is not None and (i in guided or keep_source):
                if kv is not None:
                    kv.mode = "record" if i in guided else "off"
                with torch.no_grad():
                    out_src = _cfg(net, z_src, t, cond, uncond, guidance_scale, counts)
                if kv is not None:
                    kv.mode = "off"
                z_src = sched.step(out_src, t, z_src).prev_sample
            if i in guided:
                z = _guide(net, z, t, i, target, g, weight, gmask, cond, uncond, kv, counts, result.losses)
                if not torch.isfinite(z).all():
                    raise GuidanceDiverged(f"guidance diverged at step {i} (t = {int(t)}): the latents are no "
                                           f"longer finite; lower step_size (now {g.step_size:g})")
            with torch.no_grad():
                if i == capture_at:
                    with capture(net, capture_site, detach=True, select="cond" if uncond is not None else None) as cap:
                        out = _cfg(net, z, t, cond, uncond, guidance_scale, counts)
                    result.counts["features"] = cap.output
                else:
                    out = _cfg(net, z, t, cond, uncond, guidance_scale, counts)
                z = sched.step(out, t, z).prev_sample
            if progress is not None:
                progress(i + 1, len(sched.timesteps))
    result.seconds = time.perf_counter() - t_start
    result.latents = z.detach()
    result.frames = decode_latents(pipe, z)[0]
    if keep_source:
        result.source_frames = decode_latents(pipe, z_src)[0] if z_src is not None else result.frames.copy()
    result.counts.update(counts)
    return result


def _guide(net, z, t, i, target, g: GuidanceConfig, weight, gmask, cond, uncond, kv, counts, log) -> torch.Tensor:
    """``g.iterations`` gradient steps on the latents at denoising step ``i``."""
    site = g.site
    channels = target.channels
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(g.autocast)
    for it in range(g.iterations):
        z = z.detach().requires_grad_(True)
        if kv is not None:
            kv.mode = "share"
        amp = torch.autocast(z.device.type, dtype=dtype) if dtype is not None else nullcontext()
        full = g.loss_batch == "cfg" and uncond is not None
        with torch.enable_grad():
            with amp, capture(net, site, detach=False, stop=g.early_exit, select="cond" if full else None) as cap:
                if full:
                    call_denoiser(net, torch.cat([z, z]), t, {k: torch.cat([uncond[k], cond[k]]) for k in cond})
                else:
                    call_denoiser(net, z, t, cond)
            counts["forwards"] += 2 if full else 1
            feat = moft(cap.output.float(), channels, target.size, content_removal=target.content_removal)
            loss, per_region = guidance_loss(feat, target, g.loss)
            (grad,) = torch.autograd.grad(weight * loss, z)
        counts["backwards"] += 1
        if kv is not None:
            kv.mode = "off"
        if gmask is not None:
            grad = grad * gmask.to(grad)
        z = (z - g.step_size * grad).detach()
        log.append({"step": i, "timestep": int(t), "iteration": it, "loss": float(loss.detach()), "regions": per_region,
                    "grad_norm": float(grad.norm())})
    return z


def config_dict(g: GuidanceConfig) -> dict:
    """JSON-ready settings."""
    return asdict(g)

"""Inverting a video to noise, or noising it in one step, with features captured on the way.

Example:
    >>> from moft.method.inversion import invert, noised_features, reference_features
    >>> z0 = encode_video(pipe, frames)                                   # doctest: +SKIP
    >>> inv = invert(pipe, z0, cond, num_steps=25, capture_step=5)  # official: step 5 (t = 200)  # doctest: +SKIP
    >>> inv.features["up_blocks.1"].shape  # (1, F, C, H, W)  # doctest: +SKIP
    >>> feats = noised_features(pipe, z0, cond, timestep=200, seed=0)  # one forward, no inversion  # doctest: +SKIP
    >>> ref = reference_features(pipe, frames, timestep=200)  # either, on the empty prompt  # doctest: +SKIP

Two samplers, chosen by the scheduler moft samples the model with (``moft.pipeline``):

- DDPM-family (DDIM; CogVideoX's v-prediction DDIM): prompt-to-prompt's ``DDIMInversion``, as
  the official MOFT code: at index i the denoiser is called at the i-th smallest timestep on the
  latent of the previous one, and the deterministic DDIM update is run backwards.
- Flow matching (Wan): Euler steps of the flow ODE ``dx/ds = v`` from ``s = 0`` up the schedule's
  noise levels, in the same convention (the velocity at index i is taken at the i-th smallest
  noise level ``s_i`` on the previous latent): ``x_i = x_{i-1} + (s_i - s_{i-1}) v``.

Forward noising to a timestep is ``sqrt(a) x0 + sqrt(1 - a) eps`` (DDPM) or ``(1 - s) x0 + s eps``
with ``s = t / num_train_timesteps`` (flow; how FastVMT and FlowMotion take reference features).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.adapters import call_denoiser, default_site
from .capture import capture
from ..io.video import resize_video, to_uint8
from ..models.image import image_conditioning, requires_image
from ..models.latents import encode_prompt, encode_video
from ..models.pipeline import denoiser, inverts, is_flow, nearest_step, sampling_scheduler

REFERENCE_MODES = ("inversion", "noise")


class InversionError(ValueError):
    """A sampler moft cannot invert or noise a video for (one line)."""


def check_inverts(pipe) -> None:
    """Raise ``InversionError`` unless moft inverts and noises videos for ``pipe``'s sampler (``models.inverts``)."""
    if not inverts(pipe):
        raise InversionError(f"{type(pipe).__name__} samples with {type(sampling_scheduler(pipe)).__name__} on sigmas "
                             "(continuous timesteps, scaled inputs), which moft samples but does not invert or noise: "
                             "a drag or reference target, --start-from proxy and a video's features need that "
                             "(use --target-kind curves)")


def split_prediction(scheduler, model_output: torch.Tensor, x: torch.Tensor, t: int):
    """``(x0, eps)`` from a model output under the scheduler's prediction type."""
    a = scheduler.alphas_cumprod[int(t)].to(x.dtype) if t >= 0 else scheduler.final_alpha_cumprod.to(x.dtype)
    sa, sb = a.sqrt(), (1 - a).sqrt()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        eps = model_output
        x0 = (x - sb * eps) / sa
    elif kind == "v_prediction":
        x0 = sa * x - sb * model_output
        eps = sa * model_output + sb * x
    elif kind == "sample":
        x0 = model_output
        # at alpha = 1 (a clean latent) the noise is undefined; take none
        eps = (x - sa * x0) / sb if float(sb) > 1e-6 else torch.zeros_like(x)
    else:
        raise ValueError(f"unsupported prediction_type {kind!r}")
    return x0, eps


@dataclass
class Inversion:
    """Result of ``invert``.

    Attributes:
        latents: ``[(B, F, C, h, w)]`` the latent after each inversion step (the last is the noise).
        timesteps: the denoiser timestep used at each step.
        features: ``{site: (B, F, C, H, W)}`` captured at ``capture_step`` (its last step when it
            lists several; empty if none).
        features_at: ``{step: {site: (B, F, C, H, W)}}`` at every capture step.
    """

    latents: list[torch.Tensor] = field(default_factory=list)
    timesteps: list = field(default_factory=list)
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    features_at: dict[int, dict] = field(default_factory=dict)


def _ascending(sched) -> list[tuple[float, float]]:
    """``(timestep, noise level s)`` of a flow schedule, least noisy first."""
    pairs = [(float(t), float(s)) for t, s in zip(sched.timesteps, sched.sigmas)]
    return sorted(pairs)


@torch.no_grad()
def invert(pipe, z0: torch.Tensor, cond: dict, *, num_steps: int = 25, capture_step: int | list[int] | None = None,
           sites: list[str] | None = None, stop_after_capture: bool = False, progress=None) -> Inversion:
    """Invert clean latents to noise: deterministic DDIM, or Euler steps of the flow ODE.

    Args:
        pipe: a pipeline moft has an adapter for.
        z0: ``(B, F, C, h, w)`` normalised clean latents.
        cond: conditioning for ``call_denoiser`` (the official code uses the empty prompt).
        num_steps: inversion steps.
        capture_step: step index at which to record features (official: 5 of 25, t = 200), or a
            list of them (``Inversion.features_at``).
        sites: capture sites (default: the architecture's).
        stop_after_capture: return right after the (last) capture step.
        progress: optional callable ``progress(i)`` per step.
    """
    check_inverts(pipe)
    sched = sampling_scheduler(pipe)
    net = denoiser(pipe)
    sched.set_timesteps(num_steps)
    flow = is_flow(sched)
    steps = _ascending(sched) if flow else [(int(t), None) for t in sorted(int(t) for t in sched.timesteps)]
    out = Inversion()
    wanted = set([capture_step] if isinstance(capture_step, int) else capture_step or [])
    x = z0
    for i, (t, s) in enumerate(steps):
        t_in = torch.tensor(t, device=x.device)
        if i in wanted:
            with capture(net, sites, detach=True) as cap:
                pred = call_denoiser(net, x, t_in, cond)
            out.features = out.features_at[i] = cap.features
        else:
            pred = call_denoiser(net, x, t_in, cond)
        if flow:
            x = x + (s - (steps[i - 1][1] if i > 0 else 0.0)) * pred  # Euler step of dx/ds = v
        else:
            x0, eps = split_prediction(sched, pred, x, steps[i - 1][0] if i > 0 else -1)
            a_next = sched.alphas_cumprod[t].to(x.dtype)
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        out.latents.append(x)
        out.timesteps.append(int(t) if float(t).is_integer() else t)
        if progress is not None:
            progress(i)
        if stop_after_capture and wanted and i == max(wanted):
            break
    return out


ddim_invert = invert  # the name moft used before flow models; DDIM remains the U-Nets' inversion


def noise_latents(pipe, z0: torch.Tensor, noise: torch.Tensor, timestep) -> torch.Tensor:
    """``z0`` noised to ``timestep`` in one step: DDPM ``add_noise``, or ``(1 - s) z0 + s noise`` for flows."""
    check_inverts(pipe)
    sched = sampling_scheduler(pipe)
    if is_flow(sched):
        s = float(timestep) / sched.config.num_train_timesteps
        return (1 - s) * z0 + s * noise
    return sched.add_noise(z0, noise, torch.tensor([int(timestep)]))


@torch.no_grad()
def noised_features(pipe, z0: torch.Tensor, cond: dict, *, timestep, seed: int = 0,
                    sites: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Features of one denoiser pass on ``z0`` noised to ``timestep`` (cheaper than inversion).

    Returns:
        ``{site: (B, F, C, H, W)}``.
    """
    net = denoiser(pipe)
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(z0.shape, generator=gen, dtype=z0.dtype).to(z0.device)
    x = noise_latents(pipe, z0, noise, timestep)
    with capture(net, sites, detach=True, stop=True) as cap:
        call_denoiser(net, x, torch.tensor(timestep, device=x.device), cond)
    return cap.features


def clip_conditioning(pipe, frames: np.ndarray, height: int, width: int) -> dict | None:
    """The image conditioning a clip is inverted with: on an image-to-video model, the clip's own frame 0 (the
    model sees the clip as the animation of its first frame); None on a text-to-video model.

    Example:
        >>> from moft.models.tiny import build_tiny_wan_i2v
        >>> clip = np.zeros((9, 64, 64, 3), np.uint8)                   # any size: frame 0 is resized
        >>> sorted(clip_conditioning(build_tiny_wan_i2v(), clip, 32, 32))
        ['first_frame']

    Args:
        pipe: the pipeline the clip is inverted with.
        frames: ``(F, H, W, 3)`` the clip (uint8, or floats in [0, 1]).
        height, width: the size the clip is encoded at (frame 0 is resized to it as ``encode_video`` resizes).
    """
    if not requires_image(pipe):
        return None
    first = to_uint8(np.asarray(frames[:1]))  # (1, H, W, 3)
    if first.shape[1:3] != (height, width):
        first = resize_video(first, height, width)
    return image_conditioning(pipe, first[0], num_frames=len(frames))


@dataclass
class ReferenceFeatures:
    """Result of ``reference_features``.

    Attributes:
        features: ``(1, F', C, H, W)`` at the site.
        latents: ``(1, F', C, h, w)`` the video's clean latents.
        step: index of the schedule entry used (ascending, as inversion runs).
        timestep: its timestep.
        site: the capture site.
        mode: ``"inversion"`` or ``"noise"``.
    """

    features: torch.Tensor
    latents: torch.Tensor
    step: int
    timestep: float
    site: str
    mode: str


@torch.no_grad()
def reference_features(pipe, frames: np.ndarray, *, timestep: float = 200, num_steps: int = 25,
                       site: str | None = None, mode: str = "inversion", seed: int = 0,
                       height: int | None = None, width: int | None = None, progress=None,
                       image_cond: dict | None = None) -> ReferenceFeatures:
    """A video's features at the schedule step nearest ``timestep``, on the empty prompt.

    Example:
        >>> ref = reference_features(pipe, frames, timestep=200)          # doctest: +SKIP
        >>> ref.features.shape, ref.step, ref.timestep  # (1, F, C, H, W), 5, 200  # doctest: +SKIP

    Args:
        pipe: the pipeline.
        frames: ``(F, H, W, 3)`` video (resized to ``height`` x ``width`` if given).
        timestep, num_steps: the schedule and the timestep whose nearest entry is used.
        site: capture site (default: the architecture's).
        mode: ``"inversion"`` (invert up to that step, as the paper) or ``"noise"`` (one forward
            of the video noised to it with ``seed``'s noise).
        progress: optional ``progress(done, total)`` during inversion.
        image_cond: an image-to-video model's image conditioning (``moft.models.image.image_conditioning``):
            the video is inverted as the model sees it, from that image.
    """
    return reference_features_many(pipe, frames, timesteps=[timestep], num_steps=num_steps, site=site, mode=mode,
                                   seed=seed, height=height, width=width, progress=progress,
                                   image_cond=image_cond)[0]


@torch.no_grad()
def reference_features_many(pipe, frames: np.ndarray, *, timesteps: list, num_steps: int = 25,
                            site: str | None = None, mode: str = "inversion", seed: int = 0,
                            height: int | None = None, width: int | None = None,
                            progress=None, image_cond: dict | None = None) -> list[ReferenceFeatures]:
    """``reference_features`` at several timesteps: one inversion up to the highest, or one noised
    forward each (the same ``seed``'s noise at every timestep).

    Example:
        >>> refs = reference_features_many(pipe, frames, timesteps=[200, 879], mode="noise")  # doctest: +SKIP
        >>> [r.timestep for r in refs]  # doctest: +SKIP
        [199, 879]
    """
    if mode not in REFERENCE_MODES:
        raise ValueError(f"reference mode must be one of {', '.join(REFERENCE_MODES)}, got {mode!r}")
    site = site or default_site(denoiser(pipe))
    z0 = encode_video(pipe, frames, height, width)
    cond = {"encoder_hidden_states": encode_prompt(pipe, ""), **(image_cond or {})}
    found = [nearest_step(pipe, num_steps, t, ascending=True) for t in timesteps]  # [(step, t)]
    if mode == "inversion":
        last = max(step for step, _ in found)
        inv = invert(pipe, z0, cond, num_steps=num_steps, capture_step=sorted({step for step, _ in found}),
                     sites=[site], stop_after_capture=True,
                     progress=(lambda i: progress(i + 1, last + 1)) if progress else None)
        feats = [inv.features_at[step][site] for step, _ in found]
    else:
        feats = [noised_features(pipe, z0, cond, timestep=t, seed=seed, sites=[site])[site] for _, t in found]
    return [ReferenceFeatures(f, z0, step, t, site, mode) for f, (step, t) in zip(feats, found)]

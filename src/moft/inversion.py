"""DDIM inversion and forward noising of a video, with features captured on the way.

Example:
    >>> from moft.inversion import ddim_invert, noised_features
    >>> z0 = encode_video(pipe, frames)                                   # doctest: +SKIP
    >>> inv = ddim_invert(pipe, z0, cond, num_steps=25, capture_step=5)  # official: step 5 (t = 200)
    >>> inv.features["up_blocks.1"].shape                               # (1, F, C, H, W)
    >>> feats = noised_features(pipe, z0, cond, timestep=200, seed=0)   # one forward, no inversion

Inversion follows prompt-to-prompt's ``DDIMInversion`` (as the official MOFT code): at index i the
denoiser is called at the i-th smallest timestep on the latent of the previous one, and the
deterministic DDIM update is run backwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .adapters import call_denoiser
from .capture import capture
from .models import ddim_scheduler, denoiser


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
    """Result of ``ddim_invert``.

    Attributes:
        latents: ``[(B, F, C, h, w)]`` the latent after each inversion step (the last is the noise).
        timesteps: the denoiser timestep used at each step.
        features: ``{site: (B, F, C, H, W)}`` captured at ``capture_step`` (empty if none).
    """

    latents: list[torch.Tensor] = field(default_factory=list)
    timesteps: list[int] = field(default_factory=list)
    features: dict[str, torch.Tensor] = field(default_factory=dict)


@torch.no_grad()
def ddim_invert(pipe, z0: torch.Tensor, cond: dict, *, num_steps: int = 25, capture_step: int | None = None,
                sites: list[str] | None = None, stop_after_capture: bool = False, progress=None) -> Inversion:
    """Invert clean latents to noise with deterministic DDIM.

    Args:
        pipe: a pipeline with a DDPM-family scheduler (DDIM, PNDM, ...).
        z0: ``(B, F, C, h, w)`` scaled clean latents.
        cond: conditioning for ``call_denoiser`` (the official code uses the empty prompt).
        num_steps: inversion steps.
        capture_step: step index at which to record features (official: 5 of 25, t = 200).
        sites: capture sites (default: the architecture's).
        stop_after_capture: return right after the capture step.
        progress: optional callable ``progress(i)`` per step.
    """
    sched = ddim_scheduler(pipe)
    net = denoiser(pipe)
    sched.set_timesteps(num_steps)
    ts = sorted(int(t) for t in sched.timesteps)  # ascending
    out = Inversion()
    x = z0
    for i, t in enumerate(ts):
        t_prev = ts[i - 1] if i > 0 else -1
        if i == capture_step:
            with capture(net, sites, detach=True) as cap:
                eps_out = call_denoiser(net, x, t, cond)
            out.features = cap.features
        else:
            eps_out = call_denoiser(net, x, t, cond)
        x0, eps = split_prediction(sched, eps_out, x, t_prev)
        a_next = sched.alphas_cumprod[t].to(x.dtype)
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        out.latents.append(x)
        out.timesteps.append(t)
        if progress is not None:
            progress(i)
        if stop_after_capture and i == capture_step:
            break
    return out


@torch.no_grad()
def noised_features(pipe, z0: torch.Tensor, cond: dict, *, timestep: int, seed: int = 0,
                    sites: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Features of one denoiser pass on ``z0`` noised to ``timestep`` (cheaper than inversion).

    Returns:
        ``{site: (B, F, C, H, W)}``.
    """
    sched = ddim_scheduler(pipe)
    net = denoiser(pipe)
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(z0.shape, generator=gen, dtype=z0.dtype).to(z0.device)
    t = torch.tensor([int(timestep)])
    x = sched.add_noise(z0, noise, t)
    with capture(net, sites, detach=True, stop=True) as cap:
        call_denoiser(net, x, t[0], cond)
    return cap.features

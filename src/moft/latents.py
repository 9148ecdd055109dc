"""Between pixels, latents and conditioning: VAE encode/decode, initial noise, prompt embeddings.

Example:
    >>> from moft.latents import encode_prompt, encode_video, decode_latents, initial_noise
    >>> cond = encode_prompt(pipe, "a red disk moving left")      # doctest: +SKIP
    >>> z = encode_video(pipe, frames)            # frames (F, H, W, 3) uint8 -> (1, F, C, h, w)
    >>> video = decode_latents(pipe, z)           # (1, F, H, W, 3) float in [0, 1]

All latents here are canonical ``(B, F, C, h, w)`` and already multiplied by the VAE's scaling factor.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from einops import rearrange

from .models import denoiser


def vae_scale(pipe) -> int:
    """Pixels per latent cell (8 for Stable Diffusion VAEs, 2 for moft-tiny)."""
    return 2 ** (len(pipe.vae.config.block_out_channels) - 1)


def latent_channels(pipe) -> int:
    return pipe.vae.config.latent_channels


def encode_prompt(pipe, prompt: str | list[str], device: torch.device | str | None = None) -> torch.Tensor:
    """Text embeddings ``(B, L, D)`` exactly as Stable-Diffusion-style pipelines compute them."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    device = device or pipe.text_encoder.device
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(device)
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]  # (B, L, D)


def text_conditioning(pipe, prompt: str, negative_prompt: str = "", guidance_scale: float = 1.0):
    """``(cond, uncond)`` dicts for ``call_denoiser``; ``uncond`` is None without CFG."""
    cond = {"encoder_hidden_states": encode_prompt(pipe, prompt)}
    uncond = {"encoder_hidden_states": encode_prompt(pipe, negative_prompt)} if guidance_scale > 1 else None
    return cond, uncond


def frames_to_tensor(frames: np.ndarray, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """``(F, H, W, 3)`` uint8 (or [0, 1] floats) -> ``(F, 3, H, W)`` in [-1, 1], optionally resized."""
    from .video import resize_video, to_uint8

    frames = to_uint8(np.asarray(frames))
    if height is not None and width is not None and frames.shape[1:3] != (height, width):
        frames = resize_video(frames, height, width)
    x = torch.from_numpy(frames).float() / 127.5 - 1.0
    return rearrange(x, "f h w c -> f c h w")


@torch.no_grad()
def encode_video(pipe, frames: np.ndarray, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Encode a video to scaled latents ``(1, F, C, h, w)`` (posterior mean, deterministic)."""
    vae = pipe.vae
    x = frames_to_tensor(frames, height, width).to(vae.device, vae.dtype)  # (F, 3, H, W)
    z = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in x.split(16)])  # (F, C, h, w)
    return (z * vae.config.scaling_factor)[None]


def decode_latents(pipe, latents: torch.Tensor, chunk: int = 16) -> np.ndarray:
    """Decode ``(B, F, C, h, w)`` latents to ``(B, F, H, W, 3)`` float32 frames in [0, 1]."""
    vae = pipe.vae
    b, f = latents.shape[:2]
    z = rearrange(latents, "b f c h w -> (b f) c h w") / vae.config.scaling_factor
    kwargs = {"num_frames": f} if "num_frames" in inspect.signature(vae.decode).parameters else {}
    with torch.no_grad():
        parts = []
        for piece in z.split(chunk):
            if kwargs:
                kwargs["num_frames"] = piece.shape[0]
            parts.append(vae.decode(piece.to(vae.dtype), **kwargs).sample.float())
    x = torch.cat(parts)  # (B*F, 3, H, W)
    video = rearrange((x / 2 + 0.5).clamp(0, 1), "(b f) c h w -> b f h w c", b=b)
    return video.cpu().numpy()


def initial_noise(pipe, *, num_frames: int, height: int, width: int, seed: int, batch: int = 1) -> torch.Tensor:
    """The noise a diffusers video pipeline draws for ``seed``, in canonical ``(B, F, C, h, w)``.

    Draws with the same generator, shape and order as ``AnimateDiffPipeline.prepare_latents`` (which
    samples ``(B, C, F, h, w)``), so the same seed gives the stock pipeline's video.
    """
    from diffusers.utils.torch_utils import randn_tensor

    s = vae_scale(pipe)
    shape = (batch, latent_channels(pipe), num_frames, height // s, width // s)
    gen = torch.Generator("cpu").manual_seed(seed)
    net = denoiser(pipe)
    z = randn_tensor(shape, generator=gen, device=net.device, dtype=net.dtype)
    z = z * pipe.scheduler.init_noise_sigma
    return rearrange(z, "b c f h w -> b f c h w")


def probe_conditioning(pipe, latents: torch.Tensor) -> dict:
    """Neutral conditioning for a shape probe: the empty prompt, or zero image conditioning (SVD)."""
    from .adapters import architecture_of

    net = denoiser(pipe)
    if architecture_of(net).concat_image_latents:
        b = latents.shape[0]
        return {"encoder_hidden_states": torch.zeros(b, 1, net.config.cross_attention_dim, dtype=net.dtype),
                "added_time_ids": torch.zeros(b, 3, dtype=net.dtype), "image_latents": torch.zeros_like(latents)}
    return {"encoder_hidden_states": encode_prompt(pipe, [""] * latents.shape[0])}

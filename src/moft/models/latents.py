"""Between pixels, latents and conditioning: VAE encode/decode, initial noise, prompt embeddings.

Example:
    >>> from moft.models.latents import encode_prompt, encode_video, decode_latents, initial_noise
    >>> cond = encode_prompt(pipe, "a red disk moving left")      # doctest: +SKIP
    >>> z = encode_video(pipe, frames)  # frames (F, H, W, 3) uint8 -> (1, F, C, h, w)  # doctest: +SKIP
    >>> video = decode_latents(pipe, z)  # (1, F, H, W, 3) float in [0, 1]  # doctest: +SKIP

All latents here are canonical ``(B, F, C, h, w)`` and already multiplied by the VAE's scaling factor.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from einops import rearrange

from .adapters import architecture_of
from .device import execution_device
from .pipeline import (check_frames, denoiser, latent_channels, latent_frames, sampling_scheduler, vae_scale,
                       video_vae)
from ..io.video import resize_video, to_uint8

__all__ = ["check_frames", "decode_latents", "encode_prompt", "encode_video", "frames_to_tensor", "initial_noise",
           "latent_channels", "probe_conditioning", "text_conditioning", "vae_scale"]


def encode_prompt(pipe, prompt: str | list[str], device: torch.device | str | None = None) -> torch.Tensor:
    """Text embeddings ``(B, L, D)`` exactly as the stock pipeline computes them.

    Pipelines whose ``encode_prompt`` takes a ``max_sequence_length`` (Wan, CogVideoX: T5 encoders)
    are asked through it, at the length their ``__call__`` uses by default (Wan 512, CogVideoX 226);
    Stable-Diffusion-style ones (CLIP) are tokenised to the tokenizer's ``model_max_length``.
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    device = device or execution_device(pipe)  # the accelerator, also when the text encoder is offloaded
    if "max_sequence_length" in inspect.signature(pipe.encode_prompt).parameters:
        length = inspect.signature(pipe.__call__).parameters["max_sequence_length"].default
        with torch.no_grad():
            return pipe.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=length,
                                      device=device)[0]
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(device)
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]  # (B, L, D)


def text_conditioning(pipe, prompt: str, negative_prompt: str = "", guidance_scale: float = 1.0):
    """``(cond, uncond)`` dicts for ``call_denoiser``; ``uncond`` is None without CFG. A pipeline without a text
    encoder (SVD: its image embedding is the denoiser's ``encoder_hidden_states``) takes no prompt: empty dicts."""
    if getattr(pipe, "text_encoder", None) is None:
        return {}, ({} if guidance_scale > 1 else None)
    cond = {"encoder_hidden_states": encode_prompt(pipe, prompt)}
    uncond = {"encoder_hidden_states": encode_prompt(pipe, negative_prompt)} if guidance_scale > 1 else None
    return cond, uncond


def frames_to_tensor(frames: np.ndarray, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """``(F, H, W, 3)`` uint8 (or [0, 1] floats) -> ``(F, 3, H, W)`` in [-1, 1], optionally resized."""
    frames = to_uint8(np.asarray(frames))
    if height is not None and width is not None and frames.shape[1:3] != (height, width):
        frames = resize_video(frames, height, width)
    x = torch.from_numpy(frames).float() / 127.5 - 1.0
    return rearrange(x, "f h w c -> f c h w")


def _normalise(pipe, z: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """VAE latents ``z`` ``(B, F, C, h, w)`` to moft's latents (``inverse``: back), as the stock pipeline.

    Wan: ``(z - latents_mean) / latents_std``; every other VAE: ``z * scaling_factor``.
    """
    config, vae = pipe.vae.config, video_vae(pipe)
    if vae is not None and vae.normalise == "mean_std":
        mean = torch.tensor(config.latents_mean).view(1, 1, -1, 1, 1).to(z)
        std = torch.tensor(config.latents_std).view(1, 1, -1, 1, 1).to(z)
        return z * std + mean if inverse else (z - mean) / std
    return z / config.scaling_factor if inverse else z * config.scaling_factor


@torch.no_grad()
def encode_video(pipe, frames: np.ndarray, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Encode a video to normalised latents ``(1, F', C, h, w)`` (posterior mean, deterministic).

    Image VAEs encode frame by frame (``F' = F``); video VAEs (Wan, CogVideoX) encode the clip at
    once (``F' = (F - 1) / s + 1``; ``moft.models.pipeline.FramesError`` for a count they cannot take).
    """
    vae = pipe.vae
    x = frames_to_tensor(frames, height, width).to(vae.device, vae.dtype)  # (F, 3, H, W)
    if video_vae(pipe) is not None:
        check_frames(pipe, x.shape[0])
        z = vae.encode(rearrange(x, "f c h w -> 1 c f h w")).latent_dist.mode()  # (1, C, F', h, w)
        z = rearrange(z, "b c f h w -> b f c h w")
    else:
        z = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in x.split(16)])[None]  # (1, F, C, h, w)
    return _normalise(pipe, z).float()


def decode_latents(pipe, latents: torch.Tensor, chunk: int = 16) -> np.ndarray:
    """Decode ``(B, F', C, h, w)`` latents to ``(B, F, H, W, 3)`` float32 frames in [0, 1]."""
    vae = pipe.vae
    b, f = latents.shape[:2]
    if video_vae(pipe) is not None:  # the whole clip at once, as the stock pipelines
        z = rearrange(_normalise(pipe, latents, inverse=True), "b f c h w -> b c f h w").to(vae.dtype)
        with torch.no_grad():
            x = vae.decode(z).sample.float()  # (B, 3, F, H, W)
        return rearrange((x / 2 + 0.5).clamp(0, 1), "b c f h w -> b f h w c").cpu().numpy()
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


def initial_noise(pipe, *, num_frames: int, height: int, width: int, seed: int, batch: int = 1, generator=None,
                  steps: int | None = None) -> torch.Tensor:
    """The noise a diffusers video pipeline draws for ``seed``, in canonical ``(B, F', C, h, w)``.

    Draws with the same generator, shape and order as the stock pipeline's ``prepare_latents``
    (in the denoiser's sample layout: ``(B, C, F', h, w)`` for AnimateDiff and Wan, ``(B, F', C, h, w)``
    for CogVideoX and SVD), so the same seed gives the stock pipeline's video. ``num_frames`` counts video
    frames; ``F'`` is its latent frame count. ``generator``: draw from the run's generator instead (an
    image-to-video pipeline that draws from it first: ``moft.models.image.image_conditioning``). The noise is
    scaled by the scheduler's ``init_noise_sigma`` after ``set_timesteps(steps)`` (moft's sampling scheduler, as
    the stock pipeline scales it once its timesteps are set: SVD's Euler on Karras sigmas starts at sigma_max);
    ``steps`` None: the pipeline's scheduler as it is.
    """
    from diffusers.utils.torch_utils import randn_tensor

    s = vae_scale(pipe)
    net = denoiser(pipe)
    layout = architecture_of(net).sample_layout
    sizes = {"b": batch, "c": latent_channels(pipe), "f": latent_frames(pipe, num_frames), "h": height // s,
             "w": width // s}
    gen = generator if generator is not None else torch.Generator("cpu").manual_seed(seed)  # one noise per seed
    z = randn_tensor(tuple(sizes[a] for a in layout.split()), generator=gen, device=torch.device("cpu"),
                     dtype=torch.float32)  # drawn on the CPU in float32, then moved
    sched = pipe.scheduler
    if steps is not None:
        sched = sampling_scheduler(pipe)
        sched.set_timesteps(steps)
    z = z * getattr(sched, "init_noise_sigma", 1.0)
    return rearrange(z, f"{layout} -> b f c h w").to(execution_device(pipe))


def probe_conditioning(pipe, latents: torch.Tensor) -> dict:
    """Neutral conditioning for a shape probe on ``(B, F, C, h, w)`` latents: the empty prompt (SVD, which has no
    text: a zero image embedding and time ids), and zeros for the image inputs the denoiser's config declares
    (latents on channels where it takes more than ``C``, image embeddings, the ``ofs`` embedding)."""
    net = denoiser(pipe)
    config = net.config
    b, f, c, h, w = latents.shape

    def zeros(*shape):
        return torch.zeros(*shape, device=latents.device)

    if architecture_of(net).added_time_ids:
        cond = {"encoder_hidden_states": zeros(b, 1, config.cross_attention_dim), "added_time_ids": zeros(b, 3)}
    else:
        cond = {"encoder_hidden_states": encode_prompt(pipe, [""] * b)}
    extra = int(getattr(config, "in_channels", c)) - c
    if extra > 0:
        cond["concat"] = zeros(b, f, extra, h, w)  # (B, F, C', h, w)
    if getattr(config, "image_dim", None):
        cond["encoder_hidden_states_image"] = zeros(b, 1, config.image_dim)  # (B, 1, D')
    if getattr(config, "ofs_embed_dim", None):
        cond["ofs"] = zeros(b)
    return cond


def unknown_words(tokenizer, text: str) -> list[str]:
    """Words of ``text`` that ``tokenizer`` reads as its unknown token, in order, without repeats.

    Example:
        >>> from moft.models.tiny import build_tokenizer
        >>> unknown_words(build_tokenizer(), "a red zebra moving sideways")
        ['zebra', 'sideways']

    Tokenizers without an unknown token (byte-level BPE, as CLIP's) or without offsets give ``[]``.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not text or not getattr(tokenizer, "is_fast", False):
        return []
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False, truncation=False)
    words: list[str] = []
    for token, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
        if token == unk and b > a and text[a:b] not in words:
            words.append(text[a:b])
    return words

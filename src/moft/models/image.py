"""Image input of image-to-video pipelines, as one table of data.

Example:
    >>> import numpy as np
    >>> from moft.models.image import image_conditioning, image_input_of
    >>> from moft.models.tiny import build_tiny_wan_i2v
    >>> pipe = build_tiny_wan_i2v()
    >>> image_input_of(pipe).name
    'wan-ti2v'
    >>> cond = image_conditioning(pipe, np.zeros((32, 32, 3), np.uint8), num_frames=9)
    >>> cond["first_frame"].shape                     # the image's latent: (B, 1, C, h, w)
    torch.Size([1, 1, 4, 16, 16])

An image-to-video pipeline gives its denoiser the image in one of two ways, and moft reads which from
the row of the pipeline it is handed (nothing branches on class names):

- ``first_frame`` (Wan 2.2 TI2V: ``WanImageToVideoPipeline`` with ``expand_timesteps``): the image's
  clean latent *is* latent frame 0 of the model input, and the tokens of that frame see timestep 0;
  after sampling, frame 0 is the image's latent again (the stock pipeline's last line). The latents
  being sampled keep ``C`` channels: the noise, the MOFT and the guidance are the text-to-video ones.
- ``concat`` (Wan 2.1 I2V): condition latents ``(B, F, C', h, w)`` are concatenated to the noisy latents
  on channels at every call (a mask of the given frames, ``temporal_scale`` channels per latent frame, then
  the latents of the image followed by grey frames), and the CLIP image embeddings go to the denoiser as
  ``encoder_hidden_states_image``.

Not mapped yet: CogVideoX-I2V (its stock pipeline encodes the image with a posterior *sample* drawn from
the caller's generator, so moft's deterministic encoding would not reproduce it draw for draw), SVD's
sampling (capture only: its Euler scheduler on Karras sigmas is not moft's sampler) and SparseCtrl.

``image_conditioning`` returns the entries that ``moft.models.adapters.call_denoiser`` adds to its text
conditioning dict: ``first_frame`` ``(B, 1, C, h, w)``, ``concat`` ``(B, F, C', h, w)``,
``encoder_hidden_states_image`` ``(B, L, D)``. The same dict serves the conditional and the unconditional
pass (the stock pipelines give both the image).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange, repeat

from ..io.video import fit_video, to_uint8
from .device import execution_device
from .latents import _normalise, encode_video, frames_to_tensor
from .pipeline import latent_frames, temporal_scale, vae_scale


class ImageInputError(ValueError):
    """An image given to a model that takes none, or an image moft cannot use (one-line message)."""


@dataclass(frozen=True)
class ImageInput:
    """How one kind of image-to-video pipeline takes its image.

    Attributes:
        name: short name (``wan-ti2v``).
        pipeline_class: the diffusers pipeline class name.
        config: values of the pipeline's config the row requires (``{"expand_timesteps": True}``).
        placement: ``"first_frame"`` or ``"concat"`` (see the module docstring).
        mask: ``concat`` begins with a mask of the given frames, ``temporal_scale`` channels per latent
            frame (Wan 2.1 I2V).
        image_embeds: the pipeline has an image encoder whose embeddings go to the denoiser as
            ``encoder_hidden_states_image`` (Wan 2.1 I2V).
        examples: hub checkpoints of this kind.
    """

    name: str
    pipeline_class: str
    placement: str
    config: dict = field(default_factory=dict)
    mask: bool = False
    image_embeds: bool = False
    examples: tuple[str, ...] = ()


IMAGE_INPUTS: dict[str, ImageInput] = {
    "wan-ti2v": ImageInput(
        name="wan-ti2v",
        pipeline_class="WanImageToVideoPipeline",
        config={"expand_timesteps": True},
        placement="first_frame",
        examples=("Wan-AI/Wan2.2-TI2V-5B-Diffusers", "moft-tiny-wan-i2v"),
    ),
    "wan-i2v": ImageInput(
        name="wan-i2v",
        pipeline_class="WanImageToVideoPipeline",
        config={"expand_timesteps": False},
        placement="concat",
        mask=True,
        image_embeds=True,
        examples=("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",),
    ),
}


def image_input_of(pipe) -> ImageInput | None:
    """The table's row for an image-to-video pipeline, or None for a pipeline that takes no image.

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> image_input_of(build_tiny_wan()) is None
        True
    """
    name = type(pipe).__name__
    for row in IMAGE_INPUTS.values():
        if row.pipeline_class == name and all(bool(pipe.config.get(k, False)) == v for k, v in row.config.items()):
            return row
    return None


def image_pipelines() -> list[str]:
    """Names of the image-to-video rows, for error messages (``wan-ti2v (WanImageToVideoPipeline...)``)."""
    return [f"{r.name} ({r.pipeline_class}{''.join(f', {k}={v}' for k, v in r.config.items())})"
            for r in IMAGE_INPUTS.values()]


def fit_image(image: np.ndarray, height: int, width: int, fit: str = "crop") -> np.ndarray:
    """An ``(H0, W0, 3)`` image as the model's ``(height, width, 3)`` uint8 frame, by the clip fit rule.

    Example:
        >>> fit_image(np.zeros((90, 160, 3), np.uint8), 32, 32).shape   # centre crop, then resize
        (32, 32, 3)
    """
    image = to_uint8(np.asarray(image))
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ImageInputError(f"image: expected (H, W, 3) pixels, got shape {tuple(image.shape)}")
    if min(image.shape[:2]) < 2:
        raise ImageInputError(f"image: {image.shape[1]}x{image.shape[0]} pixels is too small to animate")
    return fit_video(image[None], height, width, fit)[0]


def _concat_condition(pipe, row: ImageInput, image: np.ndarray, num_frames: int) -> torch.Tensor:
    """``(1, F', C', h, w)`` latents concatenated on channels: [the mask,] the latents of the image and grey frames."""
    f = latent_frames(pipe, num_frames)
    x = frames_to_tensor(image[None])  # (1, 3, H, W) in [-1, 1]
    clip = torch.cat([x, x.new_zeros(num_frames - 1, *x.shape[1:])])  # (F, 3, H, W): the image, then grey frames
    vae = pipe.vae
    z = vae.encode(rearrange(clip, "f c h w -> 1 c f h w").to(vae.device, vae.dtype)).latent_dist.mode()
    latents = _normalise(pipe, rearrange(z, "b c f h w -> b f c h w"))  # (1, F', C, h, w)
    if not row.mask:
        return latents
    s = temporal_scale(pipe)
    given = torch.zeros(1, (f - 1) * s + 1, *latents.shape[-2:])  # (1, frames, h, w): 1 where a frame is given
    given[:, 0] = 1
    given = torch.cat([given[:, :1].expand(-1, s, -1, -1), given[:, 1:]], dim=1)  # frame 0 counted s times
    mask = rearrange(given, "b (f s) h w -> b f s h w", s=s)  # (1, F', s, h, w)
    return torch.cat([mask.to(latents), latents], dim=2)  # (1, F', s + C, h, w)


@torch.no_grad()
def image_conditioning(pipe, image: np.ndarray, *, num_frames: int, batch: int = 1) -> dict[str, torch.Tensor]:
    """The denoiser's image conditioning for ``image`` (``(H, W, 3)`` at the model's size), as the stock pipeline.

    Example:
        >>> from moft.models.tiny import build_tiny_wan_i2v
        >>> cond = image_conditioning(build_tiny_wan_i2v(), np.zeros((32, 32, 3), np.uint8), num_frames=9)
        >>> sorted(cond)
        ['first_frame']

    Args:
        pipe: an image-to-video pipeline with a row in ``IMAGE_INPUTS``.
        image: the frame the video starts from, already at the model's size (``fit_image``).
        num_frames: video frames of the clip being sampled.
        batch: rows of the batch the conditioning is repeated to.

    Raises:
        ImageInputError: the pipeline takes no image, or the image is not a frame of a size the VAE takes.
    """
    row = image_input_of(pipe)
    if row is None:
        raise ImageInputError(f"{type(pipe).__name__} takes no image; image-to-video models: "
                              + "; ".join(image_pipelines()))
    image = to_uint8(np.asarray(image))
    s = vae_scale(pipe)
    if image.ndim != 3 or image.shape[0] % s or image.shape[1] % s:
        raise ImageInputError(f"image: shape {tuple(image.shape)} is not (H, W, 3) with H and W multiples of {s}; "
                              "fit it to the clip size first (fit_image)")
    if row.placement == "first_frame":
        cond = {"first_frame": encode_video(pipe, image[None])}  # (1, 1, C, h, w)
    else:
        cond = {"concat": _concat_condition(pipe, row, image, num_frames)}  # (1, F', C', h, w)
    if row.image_embeds:
        cond["encoder_hidden_states_image"] = pipe.encode_image(image, execution_device(pipe))  # (1, L, D)
    where = execution_device(pipe)  # float32 there, as the latents; call_denoiser casts to the denoiser's dtype
    return {k: repeat(v[:1], "1 ... -> b ...", b=batch).to(where, torch.float32) for k, v in cond.items()}


def with_first_frame(cond: dict, latents: torch.Tensor) -> torch.Tensor:
    """``latents`` ``(B, F, C, h, w)`` with latent frame 0 set to the image's (the TI2V pipeline's last line);
    unchanged for other image inputs or without an image.

    Example:
        >>> z = with_first_frame({"first_frame": torch.ones(1, 1, 4, 2, 2)}, torch.zeros(1, 3, 4, 2, 2))
        >>> z[:, 0].mean().item(), z[:, 1:].abs().sum().item()
        (1.0, 0.0)
    """
    if "first_frame" not in cond:
        return latents
    return torch.cat([cond["first_frame"].to(latents), latents[:, 1:]], dim=1)  # (B, F, C, h, w)


def requires_image(pipe) -> bool:
    """The pipeline animates an image: sampling it without one cannot run."""
    return image_input_of(pipe) is not None


def still_frames(image: np.ndarray, num_frames: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 held still over ``num_frames``: ``(F, H, W, 3)`` float32 in [0, 1], the video an image
    becomes before its regions are dragged (or drawn in a preview).

    Example:
        >>> still_frames(np.full((2, 2, 3), 255, np.uint8), 3).shape
        (3, 2, 2, 3)
    """
    return np.repeat(image[None].astype(np.float32) / 255.0, num_frames, axis=0)  # (F, H, W, 3)

"""Per-architecture facts, as one table of data.

Example:
    >>> from moft.adapters import architecture_of, ARCHITECTURES
    >>> arch = architecture_of(pipe.unet)          # doctest: +SKIP
    >>> arch.name, arch.default_site
    ('animatediff', 'up_blocks.1')

Each entry says which denoiser classes it covers, where the paper's feature is (the output of
``up_blocks[1]``), how the denoiser lays out its ``sample`` and its block outputs, and how it takes
its conditioning. Everything else in moft reads this table; nothing branches on class names.

Canonical layouts used across moft:
    latents and features: ``(B, F, C, H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat


class ArchitectureError(ValueError):
    """A model moft has no adapter for (one-line message listing what is supported)."""


@dataclass(frozen=True)
class Architecture:
    """Facts about one family of video denoisers.

    Attributes:
        name: short name (``animatediff``).
        model_classes: denoiser class names covered.
        default_site: module path of the paper's feature (output of ``up_blocks[1]``).
        sample_layout: einops axes of the denoiser's ``sample`` argument.
        block_layout: einops axes of a U-Net block's output.
        text_per_frame: ``encoder_hidden_states`` must be repeated per frame by the caller.
        concat_image_latents: the conditioning image latents are concatenated on channels (SVD).
        added_time_ids: the denoiser takes ``added_time_ids`` (SVD).
        spatial_self_attention: regex of the spatial self-attention modules whose keys/values the
            official code shares from an unguided branch (up blocks 1-3).
        temporal_modules: regex of temporal layers (listed by ``moft info``; capturable by name).
        examples: hub checkpoints of this family.
    """

    name: str
    model_classes: tuple[str, ...]
    default_site: str
    sample_layout: str
    block_layout: str
    text_per_frame: bool
    concat_image_latents: bool
    added_time_ids: bool
    spatial_self_attention: str
    temporal_modules: str
    examples: tuple[str, ...]


ARCHITECTURES: dict[str, Architecture] = {
    "animatediff": Architecture(
        name="animatediff",
        model_classes=("UNetMotionModel",),
        default_site="up_blocks.1",
        sample_layout="b c f h w",
        block_layout="(b f) c h w",
        text_per_frame=True,
        concat_image_latents=False,
        added_time_ids=False,
        spatial_self_attention=r"^up_blocks\.[123]\.attentions\.\d+\.transformer_blocks\.\d+\.attn1$",
        temporal_modules=r"motion_modules\.\d+$",
        examples=("runwayml/stable-diffusion-v1-5 + guoyww/animatediff-motion-adapter-v1-5-2",),
    ),
    "modelscope": Architecture(
        name="modelscope",
        model_classes=("UNet3DConditionModel",),
        default_site="up_blocks.1",
        sample_layout="b c f h w",
        block_layout="(b f) c h w",
        text_per_frame=False,
        concat_image_latents=False,
        added_time_ids=False,
        spatial_self_attention=r"^up_blocks\.[123]\.attentions\.\d+\.transformer_blocks\.\d+\.attn1$",
        temporal_modules=r"temp_attentions\.\d+$",
        examples=("cerspense/zeroscope_v2_576w", "ali-vilab/text-to-video-ms-1.7b"),
    ),
    "svd": Architecture(
        name="svd",
        model_classes=("UNetSpatioTemporalConditionModel",),
        default_site="up_blocks.1",
        sample_layout="b f c h w",
        block_layout="(b f) c h w",
        text_per_frame=False,
        concat_image_latents=True,
        added_time_ids=True,
        spatial_self_attention=r"^up_blocks\.[123]\.attentions\.\d+\.transformer_blocks\.\d+\.attn1$",
        temporal_modules=r"temporal_transformer_blocks\.\d+$",
        examples=("stabilityai/stable-video-diffusion-img2vid-xt",),
    ),
}


def supported_classes() -> list[str]:
    """All denoiser class names moft has an adapter for."""
    return [c for a in ARCHITECTURES.values() for c in a.model_classes]


def architecture_of(model: torch.nn.Module) -> Architecture:
    """The table entry for a denoiser (``pipe.unet``), or a clear error.

    Example:
        >>> architecture_of(pipe.unet).name     # doctest: +SKIP
        'animatediff'

    Raises:
        ArchitectureError: no entry covers ``type(model)``.
    """
    for cls in type(model).__mro__:
        for arch in ARCHITECTURES.values():
            if cls.__name__ in arch.model_classes:
                return arch
    raise ArchitectureError(
        f"no moft adapter for {type(model).__name__}; supported: {', '.join(supported_classes())}"
    )


def to_model_layout(arch: Architecture, latents: torch.Tensor) -> torch.Tensor:
    """Canonical ``(B, F, C, H, W)`` latents to the denoiser's ``sample`` layout."""
    return rearrange(latents, f"b f c h w -> {arch.sample_layout}")


def from_model_layout(arch: Architecture, sample: torch.Tensor) -> torch.Tensor:
    """The denoiser's ``sample`` layout to canonical ``(B, F, C, H, W)``."""
    return rearrange(sample, f"{arch.sample_layout} -> b f c h w")


def call_denoiser(
    model: torch.nn.Module,
    latents: torch.Tensor,
    timestep: torch.Tensor | float | int,
    cond: dict[str, torch.Tensor],
) -> torch.Tensor:
    """Run a video denoiser on canonical latents.

    Example:
        >>> out = call_denoiser(pipe.unet, z, 500, {"encoder_hidden_states": emb})  # doctest: +SKIP

    Args:
        model: the denoiser (``pipe.unet``).
        latents: ``(B, F, C, H, W)`` noisy latents.
        timestep: scalar timestep.
        cond: ``encoder_hidden_states`` ``(B, L, D)``; for SVD also ``added_time_ids`` ``(B, 3)``
            and ``image_latents`` ``(B, F, C, H, W)``.

    Returns:
        ``(B, F, C, H, W)`` model output (epsilon, v or x0 per the scheduler's prediction type).
    """
    arch = architecture_of(model)
    b, f = latents.shape[:2]
    x = latents
    if arch.concat_image_latents:
        x = torch.cat([x, cond["image_latents"]], dim=2)  # (B, F, 2C, H, W)
    ehs = cond["encoder_hidden_states"]  # (B, L, D)
    if arch.text_per_frame:
        ehs = repeat(ehs, "b l d -> (b f) l d", f=f)
    kwargs = {"added_time_ids": cond["added_time_ids"]} if arch.added_time_ids else {}
    if not torch.is_tensor(timestep):
        timestep = torch.tensor(timestep, device=latents.device)
    out = model(to_model_layout(arch, x), timestep, encoder_hidden_states=ehs, return_dict=False, **kwargs)[0]
    return from_model_layout(arch, out)

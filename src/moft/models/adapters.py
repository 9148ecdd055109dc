"""Per-architecture facts, as one table of data.

Example:
    >>> from moft.models.adapters import architecture_of, default_site
    >>> from moft.models.tiny import build_tiny_wan
    >>> net = build_tiny_wan().transformer
    >>> architecture_of(net).name, default_site(net)
    ('wan', 'blocks.3')

Each entry says which denoiser classes it covers, where the paper's feature is (the output of
``up_blocks[1]`` for U-Nets, a mid-depth block for diffusion transformers), how the denoiser lays out
its ``sample`` and its block outputs, how it takes its conditioning and classifier-free guidance, and
which sampler moft runs it with. Everything else in moft reads this table; nothing branches on class
names.

Canonical layouts used across moft:
    latents and features: ``(B, F, C, H, W)`` (``F`` counts latent frames: for VAEs that compress
    time, such as Wan's and CogVideoX's, ``F = (frames - 1) / 4 + 1``; see ``moft.pipeline``).

Diffusion transformers (Wan, CogVideoX) attend jointly over all frames and positions (full 3-D
attention): there is no spatial-only self-attention whose keys/values could be shared from a source
branch as the official MOFT code does on U-Nets, so ``spatial_self_attention`` is None there and
shared K/V is off (the sampler records that it did not run).
"""

from __future__ import annotations

import types
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
        default_site: module path of the paper's feature (output of ``up_blocks[1]``), or a
            template ``"blocks.{}"`` filled with ``round(default_depth * number of blocks)``.
        sample_layout: einops axes of the denoiser's ``sample`` argument (also the order in which
            the stock pipeline draws its initial noise).
        block_layout: einops axes of a block's output (DiTs: frame-major tokens ``f*H'W' + y*W' + x``).
        text_per_frame: ``encoder_hidden_states`` must be repeated per frame by the caller.
        concat_image_latents: the denoiser takes image latents concatenated on channels (SVD; the ``concat``
            entry of ``call_denoiser``'s conditioning).
        added_time_ids: the denoiser takes ``added_time_ids`` (SVD).
        spatial_self_attention: regex of the spatial self-attention modules whose keys/values the
            official code shares from an unguided branch (up blocks 1-3); None where attention is
            full 3-D (DiTs): shared K/V does not apply.
        temporal_modules: regex of temporal layers (listed by ``moft info``; capturable by name);
            None where time and space are attended jointly.
        examples: hub checkpoints of this family.
        blocks: regex of the block outputs ``moft info`` lists.
        default_depth: for a ``default_site`` template, the site's depth as a fraction of the number
            of blocks (anchors: FastVMT guides Wan-1.3B block 14 of 30; DiTFlow CogVideoX-5B block
            20 of 42 and 2B block 15 of 30).
        sample_arg: name of the denoiser's latent argument (``sample`` or ``hidden_states``).
        rotary_from: diffusers pipeline class whose ``_prepare_rotary_positional_embeddings``
            computes the ``image_rotary_emb`` the denoiser needs (CogVideoX), or None when the model
            computes its own rotary embeddings (Wan) or has none.
        cfg: how the stock pipeline runs classifier-free guidance: ``"batch"`` (one pass on
            ``[uncond, cond]``) or ``"two_passes"`` (Wan: a conditional then an unconditional pass).
        sampler: ``"ddim"`` (moft samples with DDIM on the model's noise schedule, as the paper) or
            ``"pipeline"`` (the pipeline's own scheduler: flow matching for Wan, v-prediction DDIM
            for CogVideoX, Euler on Karras sigmas with continuous timesteps for SVD).
        guidance_scale: the CFG scale moft runs the family with when its model folder names none, where the stock
            pipeline's default is far from moft's 7.5 (SVD: ``max_guidance_scale`` 3.0); None: 7.5.
    """

    name: str
    model_classes: tuple[str, ...]
    default_site: str
    sample_layout: str
    block_layout: str
    text_per_frame: bool
    concat_image_latents: bool
    added_time_ids: bool
    spatial_self_attention: str | None
    temporal_modules: str | None
    examples: tuple[str, ...]
    blocks: str = r"(down_blocks|up_blocks)\.\d+|mid_block"
    default_depth: float | None = None
    sample_arg: str = "sample"
    rotary_from: str | None = None
    cfg: str = "batch"
    sampler: str = "ddim"
    guidance_scale: float | None = None


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
        sampler="pipeline",
        guidance_scale=3.0,
    ),
    "wan": Architecture(
        name="wan",
        model_classes=("WanTransformer3DModel",),
        default_site="blocks.{}",
        default_depth=0.47,  # 30 blocks -> 14 (FastVMT, Wan-1.3B); 40 -> 19 (14B); 6 -> 3 (moft-tiny-wan)
        sample_layout="b c f h w",
        block_layout="b (f h w) c",
        text_per_frame=False,
        concat_image_latents=False,
        added_time_ids=False,
        spatial_self_attention=None,
        temporal_modules=None,
        examples=("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "Wan-AI/Wan2.1-T2V-14B-Diffusers"),
        blocks=r"blocks\.\d+",
        sample_arg="hidden_states",
        cfg="two_passes",
        sampler="pipeline",
    ),
    "cogvideox": Architecture(
        name="cogvideox",
        model_classes=("CogVideoXTransformer3DModel",),
        default_site="transformer_blocks.{}",
        default_depth=0.485,  # 42 blocks -> 20 (DiTFlow, 5B); 30 -> 15 (DiTFlow, 2B)
        sample_layout="b f c h w",
        block_layout="b (f h w) c",
        text_per_frame=False,
        concat_image_latents=False,
        added_time_ids=False,
        spatial_self_attention=None,
        temporal_modules=None,
        examples=("THUDM/CogVideoX-2b", "THUDM/CogVideoX-5b"),
        blocks=r"transformer_blocks\.\d+",
        sample_arg="hidden_states",
        rotary_from="CogVideoXPipeline",
        sampler="pipeline",
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


def default_site(model: torch.nn.Module) -> str:
    """The capture site moft uses when none is given: the table's site, filled in by depth for DiTs.

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> default_site(build_tiny_wan().transformer)          # 6 blocks
        'blocks.3'
    """
    arch = architecture_of(model)
    if arch.default_depth is None:
        return arch.default_site
    container = arch.default_site.split(".{}")[0]
    depth = len(model.get_submodule(container))
    return arch.default_site.format(min(depth - 1, round(arch.default_depth * depth)))


def rotary_embedding(model: torch.nn.Module, latents: torch.Tensor):
    """The ``image_rotary_emb`` the stock pipeline passes to ``model`` for ``(B, F, C, h, w)`` latents.

    Reuses the pipeline's own ``_prepare_rotary_positional_embeddings`` (named in the table), given
    the latent size in place of pixels (its only use of the VAE is to turn pixels into latents).
    Returns None for models without pipeline-computed rotary embeddings.
    """
    import diffusers

    arch = architecture_of(model)
    if arch.rotary_from is None or not getattr(model.config, "use_rotary_positional_embeddings", False):
        return None
    f, h, w = latents.shape[1], latents.shape[-2], latents.shape[-1]
    owner = types.SimpleNamespace(transformer=model, vae_scale_factor_spatial=1)
    prepare = getattr(diffusers, arch.rotary_from)._prepare_rotary_positional_embeddings
    return prepare(owner, h, w, f, latents.device)


def to_model_layout(arch: Architecture, latents: torch.Tensor) -> torch.Tensor:
    """Canonical ``(B, F, C, H, W)`` latents to the denoiser's ``sample`` layout."""
    return rearrange(latents, f"b f c h w -> {arch.sample_layout}")


def from_model_layout(arch: Architecture, sample: torch.Tensor) -> torch.Tensor:
    """The denoiser's ``sample`` layout to canonical ``(B, F, C, H, W)``."""
    return rearrange(sample, f"{arch.sample_layout} -> b f c h w")


def first_frame_timesteps(net: torch.nn.Module, timestep: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Per-token timesteps ``(B, F' * h/p * w/p)``: 0 for latent frame 0's tokens, ``timestep`` after.

    The stock TI2V pipeline's ``first_frame_mask[0][0][:, ::2, ::2] * t``, with the patch read from the
    model (frame-major tokens, as ``WanTransformer3DModel`` flattens them).

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> ts = first_frame_timesteps(build_tiny_wan().transformer, torch.tensor([500.0]), (1, 9, 4, 16, 16))
        >>> ts.shape, ts[0, :64].sum().item(), ts[0, 64].item()   # 64 tokens a frame
        (torch.Size([1, 576]), 0.0, 500.0)
    """
    b, f, _, h, w = shape
    pt, ph, pw = net.config.patch_size
    frames = torch.ones(f // pt, h // ph, w // pw, device=timestep.device, dtype=timestep.dtype)  # (F', h', w')
    frames[0] = 0
    return rearrange(frames, "f h w -> 1 (f h w)") * timestep.reshape(-1, 1).expand(b, 1)  # (B, F'h'w')


# Conditioning entries handed to the denoiser under their own names (image-to-video extras).
PASSED_THROUGH = ("encoder_hidden_states_image", "ofs")


@dataclass(frozen=True)
class SideCall:
    """A second network the stock pipeline runs on the denoiser's own inputs before it, at every call, whose outputs
    become arguments of the denoiser (SparseCtrl's ``SparseControlNetModel``: its residuals go into the U-Net's
    ``down_block_additional_residuals`` and ``mid_block_additional_residual``): ``call_denoiser``'s ``side`` entry.

    Example:
        >>> side = SideCall(pipe.controlnet, ("controlnet_cond", "conditioning_mask"),
        ...                 ("down_block_additional_residuals", "mid_block_additional_residual"))  # doctest: +SKIP

    Attributes:
        model: the network (a pipeline component).
        inputs: conditioning entries it takes, by their names.
        outputs: the denoiser arguments its outputs become, in order.
        options: fixed keyword arguments, as ``(name, value)`` pairs (``conditioning_scale``, ``guess_mode``).
    """

    model: torch.nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    options: tuple = ()

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 cond: dict) -> dict:
        """The denoiser's extra arguments for ``sample`` (in the denoiser's layout) at ``timestep``."""
        dtype = getattr(self.model, "dtype", sample.dtype)
        out = self.model(sample.to(dtype), timestep, encoder_hidden_states=encoder_hidden_states.to(dtype),
                         **{k: cond[k].to(dtype) for k in self.inputs}, **dict(self.options), return_dict=False)
        return dict(zip(self.outputs, out))


def call_denoiser(
    model: torch.nn.Module,
    latents: torch.Tensor,
    timestep: torch.Tensor | float | int,
    cond: dict[str, torch.Tensor],
) -> torch.Tensor:
    """Run a video denoiser on canonical latents.

    Example:
        >>> out = call_denoiser(pipe.unet, z, 500, {"encoder_hidden_states": emb})  # doctest: +SKIP

    The call is the stock pipeline's: the timestep broadcast over the batch, the latents under the
    table's ``sample_arg``, and for CogVideoX the pipeline's rotary embeddings.

    Args:
        model: the denoiser (``pipe.unet`` or ``pipe.transformer``).
        latents: ``(B, F, C, H, W)`` noisy latents.
        timestep: scalar timestep.
        cond: ``encoder_hidden_states`` ``(B, L, D)``; for SVD also ``added_time_ids`` ``(B, 3)``;
            for image-to-video pipelines the entries of ``moft.models.image.image_conditioning``:
            ``first_frame`` ``(B, 1, C, H, W)`` (it replaces latent frame 0, whose tokens see timestep 0),
            ``concat`` ``(B, F, C', H, W)`` (concatenated on channels after the latents: Wan 2.1, CogVideoX and
            SVD image latents), and the ``PASSED_THROUGH`` entries: ``encoder_hidden_states_image``
            ``(B, L', D')`` (Wan 2.1), ``ofs`` ``(B,)`` (CogVideoX 1.5); ``side``, a ``SideCall`` run on the
            denoiser's inputs first, with the entries it names (SparseCtrl: ``controlnet_cond``
            ``(B, C', F, H, W)``, ``conditioning_mask`` ``(B, 1, F, H, W)``), its outputs added to the call.

    The latents and conditioning are cast to the denoiser's dtype on the way in (a bfloat16 denoiser with
    float32 latents: ``--dtype bfloat16``) and the output is cast back to the latents' dtype.

    Returns:
        ``(B, F, C, H, W)`` model output (epsilon, v or x0 per the scheduler's prediction type), in the
        latents' dtype.
    """
    arch = architecture_of(model)
    b, f = latents.shape[:2]
    dtype = getattr(model, "dtype", latents.dtype)  # the denoiser's (--dtype); latents stay float32
    cond = {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in cond.items()}
    x = latents.to(dtype)
    if "first_frame" in cond:  # image-to-video (Wan 2.2 TI2V): the image's latent is frame 0
        x = torch.cat([cond["first_frame"].to(x), x[:, 1:]], dim=1)  # (B, F, C, H, W)
    if "concat" in cond:  # image-to-video (Wan 2.1 I2V, CogVideoX I2V, SVD): condition latents on channels
        x = torch.cat([x, cond["concat"].to(x)], dim=2)  # (B, F, C + C', H, W)
    ehs = cond["encoder_hidden_states"]  # (B, L, D)
    if arch.text_per_frame:
        ehs = repeat(ehs, "b l d -> (b f) l d", f=f)
    kwargs = {"added_time_ids": cond["added_time_ids"]} if arch.added_time_ids else {}
    if arch.rotary_from is not None:
        kwargs["image_rotary_emb"] = rotary_embedding(model, latents)
    if not torch.is_tensor(timestep):
        timestep = torch.tensor(timestep, device=latents.device)
    if timestep.ndim == 0:
        timestep = timestep.expand(b)  # (B,) as the stock pipelines pass it
    if "first_frame" in cond:
        timestep = first_frame_timesteps(model, timestep, latents.shape)  # (B, tokens)
    kwargs.update({k: cond[k] for k in PASSED_THROUGH if k in cond})
    kwargs[arch.sample_arg] = to_model_layout(arch, x)
    if "side" in cond:  # a second network on the same inputs first (SparseCtrl's controlnet)
        kwargs.update(cond["side"](kwargs[arch.sample_arg], timestep, ehs, cond))
    out = model(timestep=timestep, encoder_hidden_states=ehs, return_dict=False, **kwargs)[0]
    return from_model_layout(arch, out).to(latents.dtype)  # read back in the latents' precision

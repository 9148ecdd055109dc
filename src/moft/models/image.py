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

An image-to-video pipeline gives its denoiser the image in one of three ways, and moft reads which from
the row of the pipeline it is handed (nothing branches on class names):

- ``first_frame`` (Wan 2.2 TI2V: ``WanImageToVideoPipeline`` with ``expand_timesteps``): the image's
  clean latent *is* latent frame 0 of the model input, and the tokens of that frame see timestep 0;
  after sampling, frame 0 is the image's latent again (the stock pipeline's last line). The latents
  being sampled keep ``C`` channels: the noise, the MOFT and the guidance are the text-to-video ones.
- ``concat``: condition latents ``(B, F, C', h, w)`` are concatenated to the noisy latents on channels at
  every call. Wan 2.1 I2V: a mask of the given frames (``temporal_scale`` channels per latent frame), then the
  latents of the image followed by grey frames encoded as one clip, and the CLIP image embeddings go to the
  denoiser as ``encoder_hidden_states_image``. CogVideoX-I2V: the image's latent at latent frame 0, zeros
  after, scaled by the VAE's factor, and ``ofs`` where the transformer has that embedding. SVD: the latent
  (unscaled) of the image plus 0.02 of noise at every frame, the CLIP image embedding *as* the
  ``encoder_hidden_states`` (SVD has no text: the prompt is ignored) and the ``added_time_ids`` (fps - 1,
  motion bucket, noise augmentation); the unconditional branch gets zeros for both image inputs, and the
  guidance scale ramps linearly over the frames from 1 to the run's (``frame_guidance_scale``). moft samples SVD
  with its own scheduler (Euler on Karras sigmas, inputs scaled by ``scale_model_input``: ``CFGDenoiser``).
- ``side`` (AnimateDiff SparseCtrl: ``AnimateDiffSparseControlNetPipeline``): a second network (the row's
  ``SideModel``: the pipeline's ``controlnet``) runs on the denoiser's own inputs before it at every call, with the
  image as the conditioning frame at frame 0 (its VAE latent for SparseCtrl RGB, its pixels for scribble) and a
  mask of the given frames; its outputs go into the U-Net's ``down_block_additional_residuals`` and
  ``mid_block_additional_residual`` (``moft.models.adapters.SideCall``, the conditioning's ``side`` entry). Guidance
  differentiates through it too.

Draws from the caller's generator: CogVideoX-I2V's stock pipeline encodes the image with a posterior *sample*
(``retrieve_latents(..., generator)``) and SVD's adds noise drawn from it to the image, both before the noise is
drawn from the same generator; moft does the same (``posterior="sample"``, ``noise_augmentation``:
``image_conditioning(seed=...)``, and ``moft.method.sampler.sample`` draws the image's draws and then the noise
from one generator of its seed), so a seed gives the stock pipeline's video draw for draw.

SparseCtrl's stock pipeline encodes the conditioning frame with a posterior sample drawn from torch's *global*
random state (``retrieve_latents`` without a generator), which no seed reproduces; moft takes the posterior mode
(its tests give both a VAE whose posterior spread is ~0).

Not mapped: CogVideoX 1.5 (``patch_size_t``: it pads the latent frames to a multiple of 2 and drops the padding
after decoding, which moft's latent time grid does not model; refused in one line); on SVD, a drag or reference
target and ``--start-from proxy`` (moft neither inverts nor noises on its sigma schedule: refused in one line);
SparseCtrl's guess mode (``global_pool_conditions``: the stock pipeline feeds the U-Net residuals of the
conditional batch alone; refused in one line).

``image_conditioning`` returns the entries that ``moft.models.adapters.call_denoiser`` adds to its text
conditioning dict: ``first_frame`` ``(B, 1, C, h, w)``, ``concat`` ``(B, F, C', h, w)``,
``encoder_hidden_states_image`` ``(B, L, D)``, ``ofs`` ``(B,)``; SVD's ``encoder_hidden_states`` ``(B, 1, D)`` and
``added_time_ids`` ``(B, 3)``; SparseCtrl's ``controlnet_cond`` ``(B, C', F, h, w)``, ``conditioning_mask``
``(B, 1, F, h, w)`` and ``side``. The same dict serves the conditional and the
unconditional pass (the stock pipelines give both the image), except the entries a row zeroes there
(``unconditional_image``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange, repeat
from PIL import Image

from ..io.video import fit_video, to_uint8
from .adapters import SideCall
from .device import execution_device
from .latents import _normalise, encode_video, frames_to_tensor
from .pipeline import denoiser, latent_frames, temporal_scale, vae_scale


class ImageInputError(ValueError):
    """An image given to a model that takes none, or an image moft cannot use (one-line message)."""


def _clip_latents(pipe, row: "ImageInput", image: np.ndarray, num_frames: int, generator) -> torch.Tensor:
    """Wan 2.1: ``(1, F', C', h, w)`` [the mask,] the latents of the image followed by grey frames, encoded as one clip."""
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


def _first_latent(pipe, row: "ImageInput", image: np.ndarray, num_frames: int, generator) -> torch.Tensor:
    """CogVideoX: ``(1, F', C, h, w)`` the image's latent (a posterior draw from ``generator``) at latent frame 0,
    zeros after, scaled by the VAE's factor (divided by it where the VAE says ``invert_scale_latents``)."""
    patch_t = getattr(denoiser(pipe).config, "patch_size_t", None)
    if patch_t is not None:
        raise ImageInputError(f"{type(pipe).__name__} with patch_size_t={patch_t} (CogVideoX 1.5) pads its latent "
                              "frames to a multiple of it and drops the padding after decoding; moft does not map that")
    vae = pipe.vae
    x = rearrange(frames_to_tensor(image[None]), "f c h w -> 1 c f h w")  # (1, 3, 1, H, W)
    dist = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
    z = dist.sample(generator) if row.posterior == "sample" else dist.mode()  # (1, C, 1, h, w)
    factor = vae.config.scaling_factor
    z = z / factor if vae.config.get("invert_scale_latents", False) else z * factor
    z = rearrange(z, "b c f h w -> b f c h w")  # (1, 1, C, h, w)
    return torch.cat([z, z.new_zeros(1, latent_frames(pipe, num_frames) - 1, *z.shape[2:])], dim=1)  # (1, F', C, h, w)


def _augmented_latent(pipe, row: "ImageInput", image: np.ndarray, num_frames: int, generator) -> torch.Tensor:
    """SVD: ``(1, F, C, h, w)`` the latent (posterior mode, unscaled) of the image plus ``noise_augmentation`` times
    noise drawn from ``generator``, at every frame."""
    from diffusers.utils.torch_utils import randn_tensor  # heavy optional package: imported when first needed

    x = frames_to_tensor(image[None])  # (1, 3, H, W) in [-1, 1]
    x = x + row.noise_augmentation * randn_tensor(x.shape, generator=generator, device=torch.device("cpu"),
                                                  dtype=x.dtype)
    vae = pipe.vae
    z = vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mode()  # (1, C, h, w)
    return repeat(z, "b c h w -> b f c h w", f=num_frames)


def _sparse_frames(pipe, row: "ImageInput", image: np.ndarray, num_frames: int, generator) -> dict:
    """SparseCtrl: the side network's ``controlnet_cond`` ``(1, C', F, h, w)`` (the image at the row's frame indices,
    zeros elsewhere: its VAE latent, posterior mode and scaled, for a controlnet with the simplified condition
    embedding (RGB); else its pixels in [0, 1] (scribble)) and ``conditioning_mask`` ``(1, 1, F, h, w)``."""
    net = getattr(pipe, row.side.component)
    if net.config.get("global_pool_conditions", False):
        raise ImageInputError(f"{type(net).__name__} with global_pool_conditions (guess mode) gets its residuals from the "
                              "conditional batch alone in the stock pipeline; moft does not map that")
    x = frames_to_tensor(image[None])  # (1, 3, H, W) in [-1, 1]
    if net.config.get("use_simplified_condition_embedding", False):
        vae = pipe.vae
        frame = vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mode() * vae.config.scaling_factor  # (1, C, h, w)
    else:
        frame = (x + 1) / 2  # (1, 3, H, W) in [0, 1]
    given = list(row.frame_indices)
    cond = frame.new_zeros(1, frame.shape[1], num_frames, *frame.shape[-2:])  # (1, C', F, h, w)
    cond[:, :, given] = frame[:, :, None]
    mask = frame.new_zeros(1, 1, num_frames, *frame.shape[-2:])  # (1, 1, F, h, w)
    mask[:, :, given] = 1
    return {"controlnet_cond": cond, "conditioning_mask": mask}


def _penultimate_embeds(pipe, image: np.ndarray) -> torch.Tensor:
    """Wan 2.1: ``(1, L, D)`` the CLIP vision encoder's penultimate hidden states (the pipeline's ``encode_image``)."""
    return pipe.encode_image(image, execution_device(pipe))


def _projected_embeds(pipe, image: np.ndarray) -> torch.Tensor:
    """SVD: ``(1, 1, D)`` the CLIP image embedding of the image resized to 224 (the pipeline's ``_encode_image``)."""
    return pipe._encode_image(Image.fromarray(image), execution_device(pipe), 1, False)


# How the latents concatenated on channels are made (``ImageInput.concat``), and the image encoders (``image_embeds``).
CONCAT_LATENTS = {"clip": _clip_latents, "first_latent": _first_latent, "augmented": _augmented_latent}
IMAGE_ENCODERS = {"penultimate": _penultimate_embeds, "projected": _projected_embeds}


@dataclass(frozen=True)
class SideModel:
    """A second network of the pipeline that takes the image (``adapters.SideCall`` binds it to the pipeline).

    Attributes:
        component: the pipeline attribute holding it (``controlnet``).
        inputs: the conditioning entries it takes, by name.
        outputs: the denoiser arguments its outputs become, in order.
        options: fixed keyword arguments as ``(name, value)`` pairs (the stock defaults).
    """

    component: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    options: tuple = ()


@dataclass(frozen=True)
class ImageInput:
    """How one kind of image-to-video pipeline takes its image.

    Attributes:
        name: short name (``wan-ti2v``).
        pipeline_class: the diffusers pipeline class name.
        placement: ``"first_frame"``, ``"concat"`` or ``"side"`` (see the module docstring).
        config: values of the pipeline's config the row requires (``{"expand_timesteps": True}``).
        concat: how the ``concat`` latents are made (``CONCAT_LATENTS``): ``"clip"`` (the image then grey frames,
            encoded as one clip: Wan 2.1), ``"first_latent"`` (the image's latent at latent frame 0, zeros after:
            CogVideoX), ``"augmented"`` (the noise-augmented image's latent at every frame: SVD).
        mask: ``concat`` begins with a mask of the given frames, ``temporal_scale`` channels per latent
            frame (Wan 2.1 I2V).
        image_embeds: ``(encoder, key)``: the pipeline's image encoder (``IMAGE_ENCODERS``) and the denoiser
            argument its embeddings go to (``encoder_hidden_states_image``: Wan 2.1; ``encoder_hidden_states``: SVD,
            which has no text), or None.
        posterior: ``"mode"`` or ``"sample"``: the image's VAE posterior is sampled from the run's generator
            (CogVideoX's ``retrieve_latents(..., generator)``), before the noise is drawn from it.
        noise_augmentation: SVD's ``noise_aug_strength``: noise of this scale (drawn from the run's generator,
            first) is added to the image before it is encoded, and the value is the last added time id.
        added_time_ids: SVD's ``(fps - 1, motion_bucket_id)`` (the stock defaults: 7 fps, bucket 127), followed by
            ``noise_augmentation`` as the denoiser's ``added_time_ids``; empty for the rest.
        ofs: the ``ofs`` value the denoiser gets where its config has ``ofs_embed_dim`` (CogVideoX 1.5 I2V: 2.0).
        uncond_zeros: entries the unconditional branch gets as zeros (SVD: the image embedding and latents).
        cfg_min: the classifier-free guidance scale grows linearly over the frames from this value to the run's
            scale (SVD's ``min_guidance_scale``); None: one scale for every frame.
        side: the ``"side"`` placement's network (SparseCtrl's controlnet), which takes the image as conditioning
            frames at ``frame_indices``.
        frame_indices: the video frames the image conditions (SparseCtrl's ``controlnet_frame_indices``).
        examples: hub checkpoints of this kind.
    """

    name: str
    pipeline_class: str
    placement: str
    config: dict = field(default_factory=dict)
    concat: str = "clip"
    mask: bool = False
    image_embeds: tuple[str, str] | None = None
    posterior: str = "mode"
    noise_augmentation: float = 0.0
    added_time_ids: tuple[float, ...] = ()
    ofs: float | None = None
    uncond_zeros: tuple[str, ...] = ()
    cfg_min: float | None = None
    side: SideModel | None = None
    frame_indices: tuple[int, ...] = (0,)
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
        concat="clip",
        mask=True,
        image_embeds=("penultimate", "encoder_hidden_states_image"),
        examples=("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",),
    ),
    "cogvideox-i2v": ImageInput(
        name="cogvideox-i2v",
        pipeline_class="CogVideoXImageToVideoPipeline",
        placement="concat",
        concat="first_latent",
        posterior="sample",
        ofs=2.0,
        examples=("THUDM/CogVideoX-5b-I2V",),
    ),
    "svd": ImageInput(
        name="svd",
        pipeline_class="StableVideoDiffusionPipeline",
        placement="concat",
        concat="augmented",
        image_embeds=("projected", "encoder_hidden_states"),
        noise_augmentation=0.02,
        added_time_ids=(7 - 1, 127),
        uncond_zeros=("encoder_hidden_states", "concat"),
        cfg_min=1.0,
        examples=("stabilityai/stable-video-diffusion-img2vid-xt", "stabilityai/stable-video-diffusion-img2vid"),
    ),
    "sparsectrl": ImageInput(
        name="sparsectrl",
        pipeline_class="AnimateDiffSparseControlNetPipeline",
        placement="side",
        side=SideModel(component="controlnet", inputs=("controlnet_cond", "conditioning_mask"),
                       outputs=("down_block_additional_residuals", "mid_block_additional_residual"),
                       options=(("conditioning_scale", 1.0), ("guess_mode", False))),
        frame_indices=(0,),
        examples=("guoyww/animatediff-sparsectrl-rgb", "guoyww/animatediff-sparsectrl-scribble"),
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


@torch.no_grad()
def image_conditioning(pipe, image: np.ndarray, *, num_frames: int, seed: int = 0, generator=None,
                       batch: int = 1) -> dict[str, torch.Tensor]:
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
        seed: seeds the draws the stock pipeline makes from its generator before the noise (SVD's noise
            augmentation, CogVideoX's posterior sample); unused by rows that draw nothing.
        generator: the run's ``torch.Generator`` to draw from instead (``sample`` then draws the noise from it).
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
    generator = generator if generator is not None else torch.Generator("cpu").manual_seed(seed)
    if row.placement == "first_frame":
        cond = {"first_frame": encode_video(pipe, image[None])}  # (1, 1, C, h, w)
    elif row.placement == "side":
        cond = _sparse_frames(pipe, row, image, num_frames, generator)  # the side network's inputs
    else:
        cond = {"concat": CONCAT_LATENTS[row.concat](pipe, row, image, num_frames, generator)}  # (1, F', C', h, w)
    if row.image_embeds is not None:
        encoder, key = row.image_embeds
        cond[key] = IMAGE_ENCODERS[encoder](pipe, image)  # (1, L, D)
    if row.added_time_ids:
        cond["added_time_ids"] = torch.tensor([[*row.added_time_ids, row.noise_augmentation]])  # (1, 3)
    if row.ofs is not None and getattr(denoiser(pipe).config, "ofs_embed_dim", None):
        cond["ofs"] = torch.tensor([row.ofs])  # (1,)
    where = execution_device(pipe)  # float32 there, as the latents; call_denoiser casts to the denoiser's dtype
    cond = {k: repeat(v[:1], "1 ... -> b ...", b=batch).to(where, torch.float32) for k, v in cond.items()}
    if row.side is not None:
        side = row.side
        cond["side"] = SideCall(getattr(pipe, side.component), side.inputs, side.outputs, side.options)
    return cond


def unconditional_image(pipe, cond: dict) -> dict:
    """The image conditioning of the unconditional branch: ``cond`` with the row's ``uncond_zeros`` entries zeroed
    (SVD's stock pipeline gives its unconditional pass zero image embeddings and latents); ``cond`` elsewhere.

    Example:
        >>> from moft.models.tiny import build_tiny_wan_i2v
        >>> unconditional_image(build_tiny_wan_i2v(), {"first_frame": torch.ones(1)})["first_frame"]
        tensor([1.])
    """
    row = image_input_of(pipe)
    zeros = row.uncond_zeros if row is not None else ()
    return {k: torch.zeros_like(v) if k in zeros else v for k, v in cond.items()}


def frame_guidance_scale(pipe, scale: float, frames: int) -> float | torch.Tensor:
    """The classifier-free guidance scale of each latent frame: ``scale``, or for a row with ``cfg_min`` (SVD) a
    ``(1, F, 1, 1, 1)`` ramp from ``cfg_min`` at frame 0 to ``scale`` at the last (the stock ``torch.linspace``).

    Example:
        >>> from moft.models.tiny import build_tiny_wan_i2v
        >>> frame_guidance_scale(build_tiny_wan_i2v(), 4.0, 9)
        4.0
    """
    row = image_input_of(pipe)
    if row is None or row.cfg_min is None:
        return scale
    return torch.linspace(row.cfg_min, scale, frames).view(1, frames, 1, 1, 1)  # (1, F, 1, 1, 1)


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

"""Extract features and MOFT of a generated or a given video (``moft extract``).

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()                                      # the shipped model
    >>> ex = moft.extract(pipe, prompt="a red disk moving left", seed=0)
    >>> ex.features.shape, ex.moft.shape      # (F, C, H, W) at the site; (F, d, h, w) on the latent grid
    (torch.Size([8, 64, 16, 16]), torch.Size([8, 64, 16, 16]))
    >>> path = moft.write_video("clip.gif", ex.frames)
    >>> ex = moft.extract(pipe, video=moft.read_video(path), timestep=200)
    >>> ex.meta["timestep"]                    # the inversion step nearest 200 on the shipped schedule
    199

A prompt is generated with DDIM and its conditional-branch features are taken at the denoising
step nearest ``timestep``; a video is DDIM-inverted with the empty prompt and its features are
taken at the inversion step nearest ``timestep`` (official: 200). On an image-to-video model a prompt
animates the given ``image`` (the pipeline's unguided generation from it), and a video is inverted as
the animation of its own frame 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from ..io.outputs import atomic_write_bytes
from ..io.video import VideoError
from ..method.capture import capture
from ..method.channels import MotionChannels
from ..method.features import moft as moft_of
from ..method.inversion import clip_conditioning, reference_features
from ..method.sampler import sample
from ..models.adapters import call_denoiser
from ..models.device import execution_device
from ..models.image import ImageInputError, fit_image, image_input_of, image_pipelines
from ..models.latents import decode_latents, probe_conditioning
from ..models.loading import placement
from ..models.pipeline import (  # noqa: F401  (nearest_step re-exported)
    default_guidance_scale, default_video_size, denoiser, latent_channels, latent_frames, nearest_step, pipeline_site,
    vae_scale)


@dataclass
class Extraction:
    """Features of one video.

    Attributes:
        features: ``(F, C, H, W)`` raw site output.
        moft: ``(F, d, h, w)`` MOFT on the latent grid (all channels when no channel file).
        channels: ``(d,)`` indices or None.
        frames: ``(F, H, W, 3)`` float video the features belong to.
        meta: prompt/video, site, timestep, seed, model.
    """

    features: torch.Tensor
    moft: torch.Tensor
    channels: torch.Tensor | None
    frames: np.ndarray
    meta: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        tensors = {"features": self.features.float().contiguous(), "moft": self.moft.float().contiguous()}
        if self.channels is not None:
            tensors["channels"] = self.channels.long().contiguous()
        return atomic_write_bytes(Path(path), save(tensors, metadata={"moft_extract": json.dumps(self.meta)}))


@torch.no_grad()
def site_channels(pipe, site: str | None = None) -> int:
    """Channel count of a capture site, from one early-exit forward on a small zero latent."""
    net = denoiser(pipe)
    f, h, w = default_video_size(pipe)
    side = min(8, h // vae_scale(pipe))
    z = torch.zeros(1, latent_frames(pipe, f), latent_channels(pipe), side, side, device=execution_device(pipe))
    with capture(net, site, stop=True) as cap:
        call_denoiser(net, z, 500, probe_conditioning(pipe, z))
    return int(cap.output.shape[2])


def check_image(pipe, image: np.ndarray | None, height: int, width: int, fit: str = "crop",
                error: type[ValueError] = ImageInputError) -> np.ndarray | None:
    """The image an image-to-video model animates, fitted to ``height`` x ``width`` by the clip rule (``fit_image``),
    or None on a text-to-video model; one line (``error``) for an image on a text-to-video model, none on an
    image-to-video one, or an image that cannot be animated.

    Example:
        >>> from moft.models.tiny import build_tiny_wan, build_tiny_wan_i2v
        >>> check_image(build_tiny_wan_i2v(), np.zeros((90, 160, 3), np.uint8), 32, 32).shape
        (32, 32, 3)
        >>> check_image(build_tiny_wan(), np.zeros((32, 32, 3), np.uint8), 32, 32)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        moft.models.image.ImageInputError: this model (WanPipeline) animates no image; image-to-video models: ...
    """
    if image_input_of(pipe) is None:
        if image is not None:
            raise error(f"this model ({type(pipe).__name__}) animates no image; image-to-video models: "
                        + "; ".join(image_pipelines()))
        return None
    if image is None:
        raise error(f"this model ({type(pipe).__name__}) animates an image: give one (--image IMG)")
    try:
        return fit_image(image, height, width, fit)
    except ImageInputError as exc:
        raise error(str(exc)) from None


def extract(pipe, *, prompt: str | None = None, video: np.ndarray | None = None, timestep: int = 200,
            seed: int = 0, channels: MotionChannels | None = None, site: str | None = None, steps: int = 25,
            guidance_scale: float | None = None, num_frames: int | None = None, progress=None,
            image: np.ndarray | None = None, fit: str = "crop") -> Extraction:
    """Features and MOFT of a prompt's generated video (from an image on image-to-video models) or of a given video.

    Example:
        >>> pipe = moft.load_pipeline("moft-tiny-wan-i2v")                        # doctest: +SKIP
        >>> ex = extract(pipe, prompt="a red disk moving right", image=moft.read_image("disk.png"))  # doctest: +SKIP
        >>> ex.frames.shape, ex.meta["image"]      # the image's animation, frame 0 the image   # doctest: +SKIP
        ((9, 32, 32, 3), {'height': 32, 'width': 32})

    Args:
        pipe: a diffusers video pipeline.
        prompt: text to generate from (exclusive with ``video``).
        video: ``(F, H, W, 3)`` frames to invert (exclusive with ``prompt``); on an image-to-video model they are
            inverted as the animation of their own frame 0 (``clip_conditioning``).
        image: ``(H, W, 3)`` pixels of any size for an image-to-video model (required there with ``prompt``,
            refused elsewhere): the video generated is the image's animation, fitted by ``fit`` (``crop``,
            ``resize`` or ``pad``).
        timestep: where to take the features.
        seed: initial noise of the generation.
        channels: motion channels; checked against the site's width.
        site: capture site (default: the model folder's ``moft.json`` ``"site"``, else the architecture's).
        steps: DDIM steps of generation / inversion.
        guidance_scale: CFG scale of the generation (default: the model folder's ``moft.json``, else 7.5).
        num_frames: frames to generate (default: the model's).
        progress: optional ``progress(done, total)``.
    """
    if (prompt is None) == (video is None):
        raise VideoError("give exactly one of prompt or video")
    if image is not None and video is not None:
        raise VideoError("an image is animated from a prompt; a video is inverted as it is: give image with prompt")
    f, h, w = default_video_size(pipe)
    image = check_image(pipe, image, h, w, fit) if prompt is not None else None  # (H, W, 3) uint8 or None
    site = site or pipeline_site(pipe)
    if channels is not None:
        channels.check(site_channels(pipe, site), site)
    if prompt is not None:
        index, t = nearest_step(pipe, steps, timestep, ascending=False)
        guidance_scale = default_guidance_scale(pipe) if guidance_scale is None else guidance_scale
        out = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=guidance_scale, num_frames=num_frames or f,
                     capture_at=index, capture_site=site, progress=progress, image=image)
        feats, frames = out.features[site], out.frames
        meta = {"prompt": prompt, "seed": seed, "guidance_scale": guidance_scale, "denoising_step": index}
        if image is not None:
            meta["image"] = {"height": image.shape[0], "width": image.shape[1]}
    else:
        if np.ndim(video) != 4 or np.shape(video)[-1] != 3 or len(video) < 2:
            raise VideoError(f"video: expected (F, H, W, 3) frames with F >= 2 (content removal subtracts the "
                             f"mean over frames), got shape {tuple(np.shape(video))}")
        ref = reference_features(pipe, video, timestep=timestep, num_steps=steps, site=site, height=h, width=w,
                                 progress=progress, image_cond=clip_conditioning(pipe, video, h, w))
        feats, frames, index, t = ref.features, decode_latents(pipe, ref.latents)[0], ref.step, ref.timestep
        meta = {"video_frames": int(video.shape[0]), "inversion_step": index}
    idx = channels.indices if channels is not None else None
    size = (frames.shape[1] // vae_scale(pipe), frames.shape[2] // vae_scale(pipe))
    feats = feats.float()  # saved in float32 whatever the denoiser's dtype
    m = moft_of(feats, idx, size)[0]
    meta.update({"site": site, "timestep": t, "steps": steps, "feature_shape": list(feats.shape[1:]),
                 "channels": idx.tolist() if idx is not None else None, **placement(pipe)})
    return Extraction(feats[0].float(), m, idx, frames, meta)

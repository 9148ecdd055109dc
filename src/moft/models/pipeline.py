"""Facts about a loaded pipeline that the rest of moft reads: sizes, VAE scales, the time grid, schedulers.

Example:
    >>> from moft.models.tiny import build_tiny_wan
    >>> from moft.models.pipeline import latent_frames, vae_scale, valid_frames
    >>> pipe = build_tiny_wan()
    >>> vae_scale(pipe), latent_frames(pipe, 9), valid_frames(pipe, 8)
    (2, 9, [5, 9, 13])

One place for each fact: ``channels``, ``targets``, ``extract``, ``sampler``, ``inversion`` and the
CLI ask this module for the video size a model is meant for, how many pixels a latent cell spans in
space and in time, which frame counts its VAE takes, which scheduler moft samples it with, and which
step of a schedule is nearest a timestep, and where a model folder is and what its ``moft.json``
says. It imports only ``adapters`` (``models`` builds and loads pipelines on top of it).

The latent time grid: a video VAE that compresses time by ``s`` (Wan 2.1 and CogVideoX: 4) is
causal: latent frame 0 encodes video frame 0 alone and latent frame ``j >= 1`` encodes video frames
``s*(j-1)+1 .. s*j``. Such VAEs take ``s*k + 1`` frames and give ``k + 1`` latent frames. moft maps
anything said per video frame (a trajectory's positions, a region's mask) onto latent frame ``j`` by
taking video frame ``s*j``, the last frame that latent frame covers (for ``s = 1``: the identity).
"""

from __future__ import annotations

import copy
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .adapters import architecture_of, default_site
from .record import ModelRecord, RecordError  # noqa: F401  (RecordError re-exported)

SHIPPED_DIR = Path(__file__).parent / "shipped"
DEFAULT_MODEL = "moft-tiny"
CHANNELS_FILE = "motion_channels.safetensors"
DEFAULTS_FILE = "moft.json"
OFFICIAL_CFG = 7.5  # the official demos' CFG scale, for models whose folder has no moft.json


class ModelError(ValueError):
    """A model id or folder that cannot be loaded (one-line message)."""


def resolve_model(model: str | os.PathLike | None) -> str:
    """Turn a user's ``--model`` into something ``from_pretrained`` can load (a folder or hub id).

    ``None`` is the default shipped model (moft-tiny); the name of any folder in ``moft/models/shipped``
    (``moft-tiny-wan``) is that shipped model.
    """
    name = DEFAULT_MODEL if model is None else str(model)
    if "/" not in name and (SHIPPED_DIR / name).is_dir() or name == DEFAULT_MODEL:
        path = SHIPPED_DIR / name
        if not (path / "model_index.json").exists():
            raise ModelError(f"the shipped model is missing from {path}; reinstall moft")
        return str(path)
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").exists():
            raise ModelError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
        return str(path)
    owner, _, name = str(model).partition("/")
    if str(model).startswith((".", "/", "~")) or not owner or not name or "/" in name:
        raise ModelError(f"{model}: no such model folder, and not a hub id of the form owner/name")
    return str(model)


def denoiser(pipe) -> torch.nn.Module:
    """The pipeline's denoising network (``unet`` or ``transformer``)."""
    net = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if net is None:
        raise ModelError(f"{type(pipe).__name__} has no unet or transformer")
    return net


def model_record(model: str | os.PathLike | None = None) -> ModelRecord:
    """The ``moft.json`` record of a model by name or folder, read before the model loads (checks
    that need nothing but the folder: frame counts, defaults). A hub id has none: the empty record.

    Example:
        >>> model_record().guidance_scale, model_record("moft-tiny-wan").frames
        (4.0, 9)

    Raises:
        ModelError: no such model folder (``resolve_model``); ``RecordError``: a malformed ``moft.json``.
    """
    source = Path(resolve_model(model))
    return ModelRecord.read(source / DEFAULTS_FILE) if source.is_dir() else ModelRecord()


def pipeline_record(pipe) -> ModelRecord:
    """The record of the folder a pipeline was loaded from (``load_pipeline`` attached it as
    ``pipe.moft_record``); read once from ``config._name_or_path`` for a pipeline loaded another way;
    the empty record for hub ids and pipelines built in code.

    Example:
        >>> from moft.models.loading import load_pipeline
        >>> pipeline_record(load_pipeline()).guidance_scale       # the shipped model's moft.json
        4.0
    """
    config = getattr(pipe, "config", None) or {}
    origin = config.get("_name_or_path") if hasattr(config, "get") else None
    folder = Path(origin) if origin and Path(origin).is_dir() else None
    record = getattr(pipe, "moft_record", None)
    if isinstance(record, ModelRecord) and (folder is None or record.source == str(folder / DEFAULTS_FILE)):
        return record
    if folder is None:
        return ModelRecord()
    record = ModelRecord.read(folder / DEFAULTS_FILE)
    pipe.moft_record = record  # read once per pipeline (and again only if it is re-registered to another folder)
    return record


def model_defaults(model: str | os.PathLike | None = None) -> dict:
    """``model_record(model).to_dict()`` ({} when there is no such model), for callers that want a plain dict."""
    try:
        return model_record(model).to_dict()
    except ModelError:
        return {}


def pipeline_defaults(pipe) -> dict:
    """``pipeline_record(pipe).to_dict()`` ({} for hub ids and pipelines built in code).

    Example:
        >>> from moft.models.loading import load_pipeline
        >>> pipeline_defaults(load_pipeline())["guidance_scale"]     # the shipped model's moft.json
        4.0
    """
    return {} if getattr(pipe, "config", None) is None else pipeline_record(pipe).to_dict()


def default_guidance_scale(pipe) -> float:
    """The CFG scale of a pipeline: its folder's ``moft.json`` ``"guidance_scale"``, else the architecture's
    (``adapters.Architecture.guidance_scale``: SVD's stock 3.0, the top of its ramp over the frames), else the
    official 7.5.

    Example:
        >>> from moft.models.loading import load_pipeline
        >>> default_guidance_scale(load_pipeline())           # moft-tiny's moft.json
        4.0
    """
    scale = pipeline_record(pipe).guidance_scale
    if scale is None:
        scale = architecture_of(denoiser(pipe)).guidance_scale
    return float(OFFICIAL_CFG if scale is None else scale)


def pipeline_site(pipe) -> str:
    """The capture site of a pipeline: its folder's ``moft.json`` ``"site"`` (``moft locate
    --write-defaults`` puts it there), else the architecture's (``adapters.default_site``).

    Example:
        >>> from moft.models.loading import load_pipeline
        >>> pipeline_site(load_pipeline())
        'up_blocks.1'
    """
    return pipeline_record(pipe).site or default_site(denoiser(pipe))


def ddim_scheduler(pipe):
    """The pipeline's scheduler if it is DDIM, else a DDIM scheduler with the same noise schedule.

    moft samples U-Nets with DDIM, the paper's sampler, whatever scheduler the pipeline ships with
    (``sampling_scheduler``); DiTs keep their own (``adapters.ARCHITECTURES[...].sampler``).
    """
    from diffusers import DDIMScheduler  # heavy optional package: imported when first needed

    if isinstance(pipe.scheduler, DDIMScheduler):
        return pipe.scheduler
    if not hasattr(pipe.scheduler, "alphas_cumprod"):
        raise ValueError(f"{type(pipe.scheduler).__name__} is not a DDPM-family scheduler; moft samples with DDIM")
    return DDIMScheduler.from_config(pipe.scheduler.config)


class FramesError(ValueError):
    """A frame count the model's VAE cannot take (one-line message naming valid ones)."""


@dataclass(frozen=True)
class VideoVAE:
    """Facts about a VAE that encodes whole videos (3-D convolutions over time).

    Attributes:
        time_scale: config key of its temporal compression (video frames per latent frame).
        frame_step: it takes ``frame_step * k + 1`` frames (its encoder reads the first frame, then
            chunks of this many).
        normalise: ``"mean_std"`` (latents ``(z - latents_mean) / latents_std``, Wan) or
            ``"scaling_factor"`` (latents ``z * scaling_factor``, CogVideoX).
    """

    time_scale: str
    frame_step: int
    normalise: str


# VAEs not listed are image VAEs (frames encoded one by one, latents ``z * scaling_factor``).
VIDEO_VAES: dict[str, VideoVAE] = {
    "AutoencoderKLWan": VideoVAE(time_scale="scale_factor_temporal", frame_step=4, normalise="mean_std"),
    "AutoencoderKLCogVideoX": VideoVAE(time_scale="temporal_compression_ratio", frame_step=4,
                                       normalise="scaling_factor"),
}


def video_vae(pipe) -> VideoVAE | None:
    """The ``VIDEO_VAES`` entry of the pipeline's VAE, or None for an image VAE."""
    return VIDEO_VAES.get(type(pipe.vae).__name__)


def vae_scale(pipe) -> int:
    """Pixels per latent cell in space (8 for Stable Diffusion and Wan VAEs, 2 for the tiny models)."""
    config = pipe.vae.config
    return int(getattr(config, "scale_factor_spatial", 0) or 2 ** (len(config.block_out_channels) - 1))


def temporal_scale(pipe) -> int:
    """Video frames per latent frame (1 for image VAEs, 4 for Wan 2.1 and CogVideoX)."""
    vae = video_vae(pipe)
    return int(getattr(pipe.vae.config, vae.time_scale)) if vae is not None else 1


def latent_channels(pipe) -> int:
    """Channels of the VAE's latents."""
    config = pipe.vae.config
    return int(getattr(config, "z_dim", 0) or config.latent_channels)


def valid_frames(pipe, near: int) -> list[int]:
    """Three frame counts the VAE takes around ``near`` (all counts for image VAEs)."""
    vae = video_vae(pipe)
    if vae is None:
        return [max(1, near - 1), near, near + 1]
    k = max(1, round((near - 1) / vae.frame_step))
    return [vae.frame_step * j + 1 for j in (k - 1, k, k + 1) if j >= 0]


def check_frames(pipe, num_frames: int) -> None:
    """Raise ``FramesError`` if the VAE cannot take ``num_frames`` video frames.

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> check_frames(build_tiny_wan(), 8)
        Traceback (most recent call last):
        moft.models.pipeline.FramesError: this model's VAE (AutoencoderKLWan) takes 4k+1 frames, e.g. 5, 9 or 13; got 8
    """
    vae = video_vae(pipe)
    if num_frames < 1 or (vae is not None and (num_frames - 1) % vae.frame_step):
        options = valid_frames(pipe, max(num_frames, 1))
        step = vae.frame_step if vae is not None else 1
        raise FramesError(f"this model's VAE ({type(pipe.vae).__name__}) takes {step}k+1 frames, e.g. "
                          f"{', '.join(map(str, options[:-1]))} or {options[-1]}; got {num_frames}")


def latent_frames(pipe, num_frames: int) -> int:
    """Latent frames of a ``num_frames`` video: ``(num_frames - 1) / s + 1`` for a VAE compressing time by s."""
    check_frames(pipe, num_frames)
    return (num_frames - 1) // temporal_scale(pipe) + 1


def latent_time_grid(pipe, num_frames: int) -> list[int]:
    """The video frame each latent frame stands for (see the module docstring): ``[0, s, 2s, ...]``.

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> latent_time_grid(build_tiny_wan(vae={"scale_factor_temporal": 4, "temperal_downsample": [True]}), 9)
        [0, 4, 8]
    """
    s = temporal_scale(pipe)
    return [j * s for j in range(latent_frames(pipe, num_frames))]


def default_video_size(pipe) -> tuple[int, int, int]:
    """``(frames, height, width)`` a pipeline is meant for.

    In order: the ``frames``/``height``/``width`` of the ``moft.json`` in the folder it was loaded
    from; the denoiser's configured sizes (U-Nets: ``sample_size`` latents, 8 frames for the tiny
    ones and 16 otherwise; CogVideoX: ``sample_frames``/``sample_height``/``sample_width``); the
    stock pipeline's own defaults (Wan: 81 x 480 x 832).
    """
    record = pipeline_record(pipe)
    if None not in (record.frames, record.height, record.width):
        return record.frames, record.height, record.width
    config, s = denoiser(pipe).config, vae_scale(pipe)
    if getattr(config, "sample_height", None):  # CogVideoX: latent sizes, frames in pixels
        return int(config.sample_frames), int(config.sample_height) * s, int(config.sample_width) * s
    if getattr(config, "sample_size", None):
        side = config.sample_size if isinstance(config.sample_size, int) else config.sample_size[0]
        frames = int(getattr(config, "num_frames", 0) or (8 if side * s <= 64 else 16))
        return frames, side * s, side * s
    call = inspect.signature(pipe.__call__).parameters
    return tuple(int(call[k].default) for k in ("num_frames", "height", "width"))


def denoisers(pipe) -> list:
    """Every denoising network of the pipeline (Wan 2.2 A14B: both experts)."""
    second = getattr(pipe, "transformer_2", None)
    return [denoiser(pipe)] + ([second] if second is not None else [])


def denoiser_at(pipe, t):
    """The denoiser that runs at timestep ``t``.

    Wan 2.2 A14B has two experts: ``transformer`` above ``boundary_ratio * num_train_timesteps``
    (high noise), ``transformer_2`` below, as ``WanPipeline`` switches them; every other pipeline
    has one (``models.denoiser``). Capture and guidance use whichever expert runs at the step.
    """
    ratio = getattr(pipe, "config", {}).get("boundary_ratio")
    second = getattr(pipe, "transformer_2", None)
    if ratio is not None and second is not None and float(t) < ratio * pipe.scheduler.config.num_train_timesteps:
        return second
    return denoiser(pipe)


def sampling_scheduler(pipe):
    """A fresh scheduler moft samples ``pipe`` with (one per sampling branch: solvers keep state).

    U-Nets: DDIM on the model's noise schedule (the paper's sampler); DiTs: the pipeline's own
    scheduler (flow matching for Wan, v-prediction DDIM for CogVideoX), per ``adapters.ARCHITECTURES``.
    """
    if architecture_of(denoiser(pipe)).sampler == "ddim":
        return copy.deepcopy(ddim_scheduler(pipe))
    return copy.deepcopy(pipe.scheduler)


def max_steps(pipe) -> int | None:
    """The most sampling steps moft's scheduler for ``pipe`` takes: a DDPM-family schedule has
    ``num_train_timesteps`` (1000) distinct timesteps; a flow schedule has no bound (None).

    Example:
        >>> from moft.models.tiny import build_tiny_animatediff
        >>> max_steps(build_tiny_animatediff())
        1000
    """
    sched = sampling_scheduler(pipe)
    return None if is_flow(sched) else int(sched.config.num_train_timesteps)


def is_flow(scheduler) -> bool:
    """Whether a scheduler samples a flow ODE (``x_s = (1 - s) x_0 + s eps``, velocity prediction)."""
    return not hasattr(scheduler, "alphas_cumprod") or scheduler.config.get("prediction_type") == "flow_prediction"


def inverts(pipe) -> bool:
    """Whether moft inverts and noises videos in one step (``moft.method.inversion``) for ``pipe``'s sampler: flows
    and DDPM-family schedulers on integer timesteps (DDIM) do; the k-diffusion-style Euler on sigmas that SVD samples
    with (inputs scaled by ``1 / sqrt(sigma^2 + 1)``, continuous timesteps ``0.25 log sigma``) does not.

    Example:
        >>> from moft.models.tiny import build_tiny_animatediff
        >>> inverts(build_tiny_animatediff())
        True
    """
    sched = sampling_scheduler(pipe)
    return is_flow(sched) or not hasattr(sched, "sigmas")


def schedule(pipe, steps: int) -> list[float]:
    """The timesteps moft's sampler visits for ``steps`` steps, in sampling order (noisiest first)."""
    sched = sampling_scheduler(pipe)
    sched.set_timesteps(steps)
    return [float(t) for t in sched.timesteps]


def nearest_step(pipe, steps: int, timestep: float, ascending: bool) -> tuple[int, float]:
    """``(index, timestep)`` of the schedule entry nearest ``timestep``; ``ascending`` for inversion order.

    Example:
        >>> from moft.models.tiny import build_tiny_animatediff
        >>> nearest_step(build_tiny_animatediff(), 25, 200, ascending=True)   # 25 trailing DDIM steps
        (4, 199)
    """
    ts = schedule(pipe, steps)
    ts = sorted(ts) if ascending else ts
    i = int(np.argmin([abs(t - timestep) for t in ts]))
    t = ts[i]
    return i, int(t) if float(t).is_integer() else t

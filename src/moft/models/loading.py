"""Loading video diffusion pipelines: the shipped model, hub ids, local folders, tiny test models.

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()              # the shipped CPU model (moft-tiny)
    >>> pipe = moft.load_pipeline("guoyww/animatediff-motion-adapter-v1-5-2")  # doctest: +SKIP

``load_pipeline`` accepts what ``DiffusionPipeline.from_pretrained`` accepts (a hub id or a folder),
plus the name ``"moft-tiny"`` for the model that ships inside the package.
"""

from __future__ import annotations

import os

import torch

from .adapters import architecture_of
from .device import dtype_name, execution_device, resolve_device, resolve_dtype, resolve_offload
from .pipeline import (  # noqa: F401  (re-exported: where a model folder's facts used to live)
    CHANNELS_FILE,
    DEFAULT_MODEL,
    DEFAULTS_FILE,
    SHIPPED_DIR,
    ModelError,
    ddim_scheduler,
    denoiser,
    denoisers,
    model_defaults,
    model_record,
    pipeline_defaults,
    pipeline_record,
    resolve_model,
)
from .record import ModelRecord, RecordError  # noqa: F401  (re-exported)


DENOISER_COMPONENTS = ("unet", "transformer", "transformer_2")  # the pipeline components --dtype applies to
LOW_PRECISION_COMPONENTS = DENOISER_COMPONENTS + ("text_encoder",)


def load_pipeline(model: str | os.PathLike | None = None, *, dtype: str | torch.dtype = torch.float32,
                  device: str | torch.device = "cpu", offload: str | None = None):
    """Load a diffusers video pipeline (shipped model, folder or hub id) onto a device.

    Example:
        >>> pipe = load_pipeline("moft-tiny")
        >>> pipe.unet.config.block_out_channels
        [32, 64, 96]
        >>> pipe = load_pipeline("moft-tiny", dtype="bfloat16")
        >>> pipe.unet.dtype, pipe.vae.dtype                 # the VAE stays float32
        (torch.bfloat16, torch.float32)

    Args:
        model: ``"moft-tiny"`` (default), the name of another shipped model (``"moft-tiny-wan"``), a
            pipeline folder, or a hub id.
        dtype: the denoiser's (and text encoder's) dtype: ``float32``, ``bfloat16`` or ``float16``;
            the VAE stays float32, and latents, losses and optimiser state stay float32 whatever it is.
        device: ``"cpu"`` (default), ``"auto"`` (the accelerator when there is one), ``"cuda[:N]"``, ``"mps"``.
        offload: None / ``"none"``, ``"model"`` (the pipeline's ``enable_model_cpu_offload``: each model
            on the accelerator only while it runs) or ``"group"`` (block-level group offloading); see ``place``.

    The folder's ``moft.json`` is read first (``model_record``: a malformed one stops here, before the
    weights load) and attached to the pipeline as ``pipe.moft_record`` (``pipeline_record`` returns it).

    Raises:
        DeviceError: a device this machine does not have or an unknown dtype (checked before loading).
        ModelError: the model cannot be found or loaded (one-line message); ``RecordError``: its
            ``moft.json`` is malformed.
    """
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    device, dtype, offload = resolve_device(device), resolve_dtype(dtype), resolve_offload(offload)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()

    source = resolve_model(model)
    record = model_record(source)
    dtypes = {**{name: dtype for name in LOW_PRECISION_COMPONENTS}, "default": torch.float32}
    try:
        pipe = DiffusionPipeline.from_pretrained(source, dtype=dtypes)
    except Exception as exc:  # diffusers raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{model}: cannot load pipeline ({first})") from exc
    pipe.set_progress_bar_config(disable=True)
    architecture_of(denoiser(pipe))  # a clear error for a model moft has no adapter for
    pipe.moft_record = record  # the folder's defaults, read once (moft.models.pipeline.pipeline_record)
    return place(pipe, device, offload=offload)


def place(pipe, device: str | torch.device = "cpu", *, offload: str | None = None):
    """Put a pipeline on ``device``, optionally with the pipeline's own offloading, and return it.

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> place(build_tiny_wan(), "cpu").transformer.device
        device(type='cpu')

    ``offload="model"`` is diffusers' ``enable_model_cpu_offload``: the text encoder, denoiser and VAE
    live on the CPU and each moves to ``device`` while it runs (guidance runs the denoiser many times in a
    row, so it stays there during sampling). ``"group"`` is ``enable_group_offload`` at block level (one
    block at a time on ``device``): the least memory, the most transfers. Without offload every component
    moves to ``device``.
    """
    device, offload = resolve_device(device), resolve_offload(offload)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "group":
        pipe.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                  offload_type="block_level", num_blocks_per_group=1)
    else:
        pipe.to(device)
    return pipe


def placement(pipe) -> dict:
    """What a run report says about where it ran: device, the denoiser's dtype, offloading.

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> placement(build_tiny_wan())
        {'device': 'cpu', 'dtype': 'float32', 'offload': 'none', 'torch': '...'}
    """
    hooked = getattr(pipe, "_all_hooks", None)
    grouped = any(getattr(m, "_diffusers_hook", None) is not None and
                  m._diffusers_hook.get_hook("group_offloading") is not None for m in denoisers(pipe))
    return {"device": str(execution_device(pipe)), "dtype": dtype_name(denoiser(pipe).dtype),
            "offload": "group" if grouped else "model" if hooked else "none", "torch": torch.__version__}

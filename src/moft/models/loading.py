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
from .pipeline import (  # noqa: F401  (re-exported: where a model folder's facts used to live)
    CHANNELS_FILE,
    DEFAULT_MODEL,
    DEFAULTS_FILE,
    SHIPPED_DIR,
    ModelError,
    ddim_scheduler,
    denoiser,
    model_defaults,
    model_record,
    pipeline_defaults,
    pipeline_record,
    resolve_model,
)
from .record import ModelRecord, RecordError  # noqa: F401  (re-exported)


def load_pipeline(model: str | os.PathLike | None = None, *, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu"):
    """Load a diffusers video pipeline (shipped model, folder or hub id).

    Example:
        >>> pipe = load_pipeline("moft-tiny")
        >>> pipe.unet.config.block_out_channels
        [32, 64, 96]

    Args:
        model: ``"moft-tiny"`` (default), the name of another shipped model (``"moft-tiny-wan"``), a
            pipeline folder, or a hub id.
        dtype: weights dtype.
        device: where to put it.

    The folder's ``moft.json`` is read first (``model_record``: a malformed one stops here, before the
    weights load) and attached to the pipeline as ``pipe.moft_record`` (``pipeline_record`` returns it).

    Raises:
        ModelError: the model cannot be found or loaded (one-line message); ``RecordError``: its
            ``moft.json`` is malformed.
    """
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()

    source = resolve_model(model)
    record = model_record(source)
    try:
        pipe = DiffusionPipeline.from_pretrained(source, dtype=dtype)
    except Exception as exc:  # diffusers raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{model}: cannot load pipeline ({first})") from exc
    pipe.set_progress_bar_config(disable=True)
    architecture_of(denoiser(pipe))  # a clear error for a model moft has no adapter for
    pipe = pipe.to(device)
    pipe.moft_record = record  # the folder's defaults, read once (moft.models.pipeline.pipeline_record)
    return pipe

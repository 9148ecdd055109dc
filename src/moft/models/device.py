"""Where a model runs: the device and the denoiser's dtype from their names, checked before anything loads.

Example:
    >>> from moft.models.device import resolve_device, resolve_dtype
    >>> resolve_device("cpu"), resolve_dtype("bfloat16")
    (device(type='cpu'), torch.bfloat16)
    >>> resolve_device("auto").type in ("cpu", "cuda", "mps")    # the accelerator when there is one
    True

The rule moft follows on every device: the denoiser (and the text encoder) may run in a lower precision
(``--dtype``), but latents, losses, optimiser state and the scheduler stay float32 (``call_denoiser`` casts
the denoiser's input to its dtype and its output back); the VAE stays float32. Initial noise is drawn on the
CPU with a seeded generator and then moved, as diffusers does, so a seed gives the same starting noise on
every device (the videos then differ by the device's arithmetic).
"""

from __future__ import annotations

import torch

from .pipeline import denoiser

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = "auto, cpu, cuda, cuda:N or mps"
OFFLOADS = ("none", "model", "group")


class DeviceError(ValueError):
    """A device or dtype that is not there or not known (one-line message)."""


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``name``; ``"auto"`` (or None) picks CUDA, then MPS, then the CPU.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        moft.models.device.DeviceError: --device: expected auto, cpu, cuda, cuda:N or mps, got 'tpu'

    Raises:
        DeviceError: an unknown name, or a device this machine does not have (e.g. ``cuda`` without a GPU).
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device: expected {DEVICES}, got {name!r}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__}); "
                              f"use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError(f"--device {name}: this machine has no MPS (Apple GPU) device; use --device cpu or auto")
        return device
    raise DeviceError(f"--device: expected {DEVICES}, got {name!r}")


def resolve_dtype(name: str | torch.dtype | None = "float32") -> torch.dtype:
    """The ``torch.dtype`` for ``float32``, ``bfloat16`` or ``float16`` (a dtype passes through).

    Example:
        >>> resolve_dtype("float16")
        torch.float16
        >>> resolve_dtype("int8")
        Traceback (most recent call last):
        ...
        moft.models.device.DeviceError: --dtype: expected float32, bfloat16 or float16, got 'int8'
    """
    if isinstance(name, torch.dtype) and name in DTYPES.values():
        return name
    if isinstance(name, str) and name.strip().lower() in DTYPES:
        return DTYPES[name.strip().lower()]
    if name is None:
        return torch.float32
    raise DeviceError(f"--dtype: expected float32, bfloat16 or float16, got {str(name).replace('torch.', '')!r}")


def resolve_offload(name: str | None) -> str:
    """``"none"``, ``"model"`` (the pipeline's ``enable_model_cpu_offload``) or ``"group"`` (block-level
    ``enable_group_offload``); None is ``"none"``.

    Example:
        >>> resolve_offload(None), resolve_offload("model")
        ('none', 'model')
    """
    name = (name or "none").strip().lower()
    if name not in OFFLOADS:
        raise DeviceError(f"--offload: expected none, model or group, got {name!r}")
    return name


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``.

    Example:
        >>> dtype_name(torch.float32)
        'float32'
    """
    return str(dtype).replace("torch.", "")


def execution_device(pipe) -> torch.device:
    """Where the pipeline's models compute: the accelerator under CPU or group offloading (diffusers'
    ``_execution_device``), else the device of its weights.

    Example:
        >>> from moft.models.tiny import build_tiny_wan
        >>> execution_device(build_tiny_wan())
        device(type='cpu')
    """
    device = getattr(pipe, "_execution_device", None) or getattr(pipe, "device", None)
    if device is None:  # an object holding the components without a pipeline's bookkeeping: the denoiser's device
        device = next(denoiser(pipe).parameters()).device
    return torch.device(device)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())

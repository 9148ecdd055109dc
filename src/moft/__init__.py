"""moft: training-free motion interpretation and control in video diffusion models.

Implements MOFT (Xiao et al., "Video Diffusion Models are Training-free Motion Interpreter and
Controller", NeurIPS 2024). The data flow, one module each:

    capture (capture.py) -> MOFT (features.py, channels.py) -> target (targets.py) -> guided sampler (sampler.py)

Example:
    >>> import moft
    >>> pipe = moft.load_pipeline()                      # the shipped CPU model
    >>> ex = moft.extract(pipe, prompt="a red disk moving left")
    >>> ex.moft.shape                                    # (F, d, h, w): all 64 channels without a channel file
    torch.Size([8, 64, 16, 16])
    >>> traj = moft.load_trajectory("examples/object_left.json", default_frames=8)
    >>> res = moft.control(pipe, traj, prompt="a red disk", channels=moft.default_channels())  # doctest: +SKIP
"""

import logging as _logging


class _NoTorchvisionFallbackNote(_logging.Filter):
    """Drop transformers' note that an image processor falls back to its PIL version without torchvision: moft
    loads no image processor of its own, and the note fires on every pipeline load. Only that message."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return "requires torchvision (not installed); falling back to" not in record.getMessage()


_logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionFallbackNote())

# The public names and the module each lives in. They load on first use (PEP 562), so ``import moft``,
# ``moft --version`` and ``moft --help`` do not pay for torch and diffusers until a name needs them.
_EXPORTS = {
    "models.adapters": ("ARCHITECTURES", "Architecture", "ArchitectureError", "architecture_of", "call_denoiser"),
    "method.capture": ("StopForward", "capture"),
    "method.channels": ("ChannelsError", "MotionChannels", "fit_channels", "default_channels"),
    "front.control": ("ControlResult", "control", "default_guidance"),
    "front.extract": ("Extraction", "extract"),
    "method.features": ("cosine_map", "moft", "region_mean", "remove_content_correlation", "resize", "select_channels"),
    "method.inversion": ("ddim_invert", "noised_features"),
    "models.latents": ("decode_latents", "encode_prompt", "encode_video", "initial_noise"),
    "front.locate": ("LocateError", "LocateReport", "locate"),
    "models.loading": ("ModelError", "load_pipeline"),
    "method.sampler": ("GuidanceConfig", "SampleResult", "SamplerError", "sample"),
    "method.shared_kv": ("SharedKV",),
    "method.drag": ("drag_video",),
    "method.targets": ("Target", "TargetError", "drag_target", "reference_target", "synthesize_target"),
    "io.trajectory": ("Trajectory", "TrajectoryError", "load_trajectory", "parse_trajectory"),
    "io.video": ("read_video", "write_video"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    """``moft.X``: import X's module on first use and keep X here."""
    if name not in _WHERE:
        raise AttributeError(f"module 'moft' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "Architecture", "ArchitectureError", "ChannelsError", "ControlResult", "Extraction",
    "GuidanceConfig", "LocateError", "LocateReport", "ModelError", "MotionChannels", "SampleResult", "SamplerError", "SharedKV", "StopForward", "Target",
    "TargetError", "Trajectory", "TrajectoryError", "architecture_of", "call_denoiser", "capture", "control",
    "cosine_map", "ddim_invert", "default_guidance", "decode_latents", "default_channels", "drag_target", "drag_video",
    "encode_prompt", "encode_video", "extract",
    "fit_channels", "initial_noise", "load_pipeline", "load_trajectory", "locate", "moft", "noised_features",
    "parse_trajectory", "read_video", "reference_target", "region_mean", "remove_content_correlation", "resize",
    "sample", "select_channels", "synthesize_target", "write_video",
]

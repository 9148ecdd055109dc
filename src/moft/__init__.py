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

import importlib
import logging as _logging

__version__ = "0.1.0"


class _NoTorchvisionFallbackNote(_logging.Filter):
    """Drop transformers' note that an image processor falls back to its PIL version without torchvision: moft
    loads no image processor of its own, and the note fires on every pipeline load. Only that message."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return "requires torchvision (not installed); falling back to" not in record.getMessage()


_logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionFallbackNote())

_EXPORTS = {  # public name -> the module that defines it; imported on first use (PEP 562)
    "ARCHITECTURES": ".models.adapters",
    "Architecture": ".models.adapters",
    "ArchitectureError": ".models.adapters",
    "architecture_of": ".models.adapters",
    "call_denoiser": ".models.adapters",
    "StopForward": ".method.capture",
    "capture": ".method.capture",
    "ChannelsError": ".method.channels",
    "MotionChannels": ".method.channels",
    "fit_channels": ".method.channels",
    "ControlResult": ".front.control",
    "control": ".front.control",
    "default_guidance": ".front.control",
    "Extraction": ".front.extract",
    "extract": ".front.extract",
    "cosine_map": ".method.features",
    "moft": ".method.features",
    "region_mean": ".method.features",
    "remove_content_correlation": ".method.features",
    "resize": ".method.features",
    "select_channels": ".method.features",
    "ddim_invert": ".method.inversion",
    "noised_features": ".method.inversion",
    "decode_latents": ".models.latents",
    "encode_prompt": ".models.latents",
    "encode_video": ".models.latents",
    "initial_noise": ".models.latents",
    "LocateError": ".front.locate",
    "LocateReport": ".front.locate",
    "locate": ".front.locate",
    "ModelError": ".models.loading",
    "load_pipeline": ".models.loading",
    "default_channels": ".method.channels",
    "GuidanceConfig": ".method.sampler",
    "SampleResult": ".method.sampler",
    "SamplerError": ".method.sampler",
    "sample": ".method.sampler",
    "SharedKV": ".method.shared_kv",
    "drag_video": ".method.drag",
    "Target": ".method.targets",
    "TargetError": ".method.targets",
    "drag_target": ".method.targets",
    "reference_target": ".method.targets",
    "synthesize_target": ".method.targets",
    "Tracks": ".io.tracks",
    "TracksError": ".io.tracks",
    "read_tracks": ".io.tracks",
    "Trajectory": ".io.trajectory",
    "TrajectoryError": ".io.trajectory",
    "load_trajectory": ".io.trajectory",
    "parse_trajectory": ".io.trajectory",
    "read_image": ".io.image",
    "read_video": ".io.video",
    "write_video": ".io.video",
}


def __getattr__(name: str):
    """Import a public name's module when the name is first used: ``import moft`` itself stays light, so the
    ``moft`` command can take Ctrl-C before torch and diffusers load (``moft.front.launch``)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'moft' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "ARCHITECTURES", "Architecture", "ArchitectureError", "ChannelsError", "ControlResult", "Extraction",
    "GuidanceConfig", "LocateError", "LocateReport", "ModelError", "MotionChannels", "SampleResult", "SamplerError", "SharedKV", "StopForward", "Target",
    "TargetError", "Tracks", "TracksError", "Trajectory", "TrajectoryError", "architecture_of", "call_denoiser", "capture", "control",
    "cosine_map", "ddim_invert", "default_guidance", "decode_latents", "default_channels", "drag_target", "drag_video",
    "encode_prompt", "encode_video", "extract",
    "fit_channels", "initial_noise", "load_pipeline", "load_trajectory", "locate", "moft", "noised_features",
    "parse_trajectory", "read_image", "read_tracks", "read_video", "reference_target", "region_mean", "remove_content_correlation", "resize",
    "sample", "select_channels", "synthesize_target", "write_video",
]

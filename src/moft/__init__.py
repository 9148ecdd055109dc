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

from .models.adapters import ARCHITECTURES, Architecture, ArchitectureError, architecture_of, call_denoiser
from .method.capture import StopForward, capture
from .method.channels import ChannelsError, MotionChannels, fit_channels
from .front.control import ControlResult, control, default_guidance
from .front.extract import Extraction, extract
from .method.features import cosine_map, moft, region_mean, remove_content_correlation, resize, select_channels
from .method.inversion import ddim_invert, noised_features
from .models.latents import decode_latents, encode_prompt, encode_video, initial_noise
from .front.locate import LocateError, LocateReport, locate
from .models.loading import ModelError, load_pipeline
from .method.channels import default_channels
from .method.sampler import GuidanceConfig, SampleResult, SamplerError, sample
from .method.shared_kv import SharedKV
from .method.drag import drag_video
from .method.targets import Target, TargetError, drag_target, reference_target, synthesize_target
from .io.tracks import Tracks, TracksError, read_tracks
from .io.trajectory import Trajectory, TrajectoryError, load_trajectory, parse_trajectory
from .io.video import read_video, write_video

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "Architecture", "ArchitectureError", "ChannelsError", "ControlResult", "Extraction",
    "GuidanceConfig", "LocateError", "LocateReport", "ModelError", "MotionChannels", "SampleResult", "SamplerError", "SharedKV", "StopForward", "Target",
    "TargetError", "Tracks", "TracksError", "Trajectory", "TrajectoryError", "architecture_of", "call_denoiser", "capture", "control",
    "cosine_map", "ddim_invert", "default_guidance", "decode_latents", "default_channels", "drag_target", "drag_video",
    "encode_prompt", "encode_video", "extract",
    "fit_channels", "initial_noise", "load_pipeline", "load_trajectory", "locate", "moft", "noised_features",
    "parse_trajectory", "read_tracks", "read_video", "reference_target", "region_mean", "remove_content_correlation", "resize",
    "sample", "select_channels", "synthesize_target", "write_video",
]

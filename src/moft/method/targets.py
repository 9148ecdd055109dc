"""Target MOFT for control: synthesized from a trajectory, or taken from a (reference or drag-proxy) video.

Example:
    >>> import moft, torch
    >>> from moft.method.targets import synthesize_target, Target
    >>> traj = moft.load_trajectory("examples/object_left.json", default_frames=8)
    >>> channels = moft.default_channels()             # the shipped model's motion channels
    >>> target = synthesize_target(traj, channels, latent_size=(16, 16))
    >>> target.curves.shape                            # (R, F, d) one curve per region; d = 4 (the axes share 2)
    torch.Size([1, 8, 4])
    >>> target.masks.shape                             # (R, h, w) the region on the working grid
    torch.Size([1, 16, 16])
    >>> path = target.save("left.target.safetensors")
    >>> torch.equal(Target.load(path).curves, target.curves)
    True

Synthesis generalises the paper's piecewise-linear min/max curves (official ``get_curve``) to 2-D
motion: each motion channel's region-mean value is modelled as a linear function of the content's
displacement from its mean position plus a direction-independent baseline,
``M_c(f) = m_c(f) + a_c * (x_f - mean x) + b_c * (y_f - mean y)``, with ``m_c`` and ``(a_c, b_c)``
fitted on the channel-fitting pans (``MotionChannels.baseline`` and ``.response``). A constant motion
gives the paper's linear ramp; a reversal gives its piecewise-linear curve.

A trajectory can also become per-position maps: ``drag_target`` inverts the unguided video of the
same noise with its regions dragged along the trajectory (``moft.drag``), as ``reference_target``
inverts a reference video. Pair map targets with the per-position loss; region means of a moving
object's MOFT average away the structure that carries its motion on moft-tiny
(``docs/results/tune_control.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save

from ..io.outputs import atomic_write_bytes
from ..io.trajectory import TrajectoryError
from ..models.pipeline import default_video_size, vae_scale
from .channels import MotionChannels
from .drag import drag_video, swept_masks
from .features import moft, region_mean
from .inversion import reference_features_many


# how a trajectory becomes a target: the paper's region-mean curves, or the inverted drag proxy
TARGET_KINDS = ("curves", "drag")


class TargetError(ValueError):
    """A target file that is missing, malformed, or does not match the run."""


@dataclass
class Target:
    """What guidance pulls the MOFT towards.

    Attributes:
        curves: ``(R, F, d)`` region-mean target per region (the official loss).
        masks: ``(R, h, w)`` bool regions on the working grid (where the loss looks and, with
            gradient masking, where latents may change).
        channels: ``(d,)`` channel indices, or None for all channels (the "vanilla"/"+CR" ablations).
        content_removal: whether the target and the generated features have the frame mean removed.
        maps: ``(R, F, d, h, w)`` per-position targets (reference videos), or None (broadcast curves).
        meta: where it came from (trajectory or reference video, site, timestep, ...).
        timed_maps: ``(S, R, F, d, h, w)`` per-position targets at the ``S`` timesteps
            ``meta["timesteps"]`` (``GuidanceConfig(target_timesteps="guided")``), or None: guidance
            at timestep ``t`` compares with the nearest (``Target.at``).
    """

    curves: torch.Tensor
    masks: torch.Tensor
    channels: torch.Tensor | None
    content_removal: bool = True
    maps: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)
    timed_maps: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return int(self.curves.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.masks.shape[-2]), int(self.masks.shape[-1])

    def at(self, timestep) -> "Target":
        """The target guidance compares with at ``timestep``: itself, or (with ``timed_maps``) the maps
        of the nearest of ``meta["timesteps"]`` and their region means.

        Example:
            >>> masks = torch.ones(1, 2, 2, dtype=torch.bool)
            >>> timed = torch.stack([torch.zeros(1, 3, 4, 2, 2), torch.ones(1, 3, 4, 2, 2)])  # (S, R, F, d, h, w)
            >>> t = Target(torch.zeros(1, 3, 4), masks, None, timed_maps=timed, meta={"timesteps": [800, 200]})
            >>> float(t.at(760).maps.mean()), float(t.at(250).curves.mean())
            (0.0, 1.0)
        """
        if self.timed_maps is None:
            return self
        steps = torch.tensor([float(v) for v in self.meta["timesteps"]])
        k = int((steps - float(timestep)).abs().argmin())
        maps = self.timed_maps[k]  # (R, F, d, h, w)
        curves = torch.stack([region_mean(maps[r][None], m)[0] for r, m in enumerate(self.masks)])  # (R, F, d)
        return Target(curves, self.masks, self.channels, self.content_removal, maps, dict(self.meta, timestep=steps[k].item()))

    def save(self, path: str | Path) -> Path:
        tensors = {"curves": self.curves.float().contiguous(), "masks": self.masks.to(torch.uint8).contiguous()}
        if self.channels is not None:
            tensors["channels"] = self.channels.long().contiguous()
        if self.maps is not None:
            tensors["maps"] = self.maps.float().contiguous()
        if self.timed_maps is not None:
            tensors["timed_maps"] = self.timed_maps.float().contiguous()
        meta = dict(self.meta, content_removal=self.content_removal)
        return atomic_write_bytes(Path(path), save(tensors, metadata={"moft_target": json.dumps(meta)}))

    @classmethod
    def load(cls, path: str | Path) -> "Target":
        path = Path(path)
        if not path.is_file():
            raise TargetError(f"{path}: no such target file")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {})["moft_target"])
                t = {k: fh.get_tensor(k) for k in fh.keys()}
            target = cls(t["curves"], t["masks"].bool(), t.get("channels"), bool(meta.pop("content_removal")),
                         t.get("maps"), meta, t.get("timed_maps"))
        except Exception as exc:
            raise TargetError(f"{path}: not a moft target file ({type(exc).__name__})") from exc
        if target.curves.ndim != 3 or target.masks.ndim != 3 or target.curves.shape[0] != target.masks.shape[0]:
            raise TargetError(f"{path}: malformed target (curves {tuple(target.curves.shape)}, "
                              f"masks {tuple(target.masks.shape)})")
        return target


def synthesize_target(trajectory, channels: MotionChannels, *, latent_size: tuple[int, int],
                      num_frames: int | None = None, gain: float = 1.0,
                      indices: torch.Tensor | None = None, time_grid: list[int] | None = None) -> Target:
    """Target curves from a trajectory and the channels' fitted response.

    Args:
        trajectory: a parsed ``moft.io.trajectory.Trajectory``.
        channels: fitted motion channels (with ``response``).
        latent_size: ``(h, w)`` working grid for the masks.
        num_frames: must equal the trajectory's frame count when given.
        gain: scales the synthesized curves (larger = stronger motion request).
        indices: channels to target (default: the motion channels ``channels.indices``; e.g. all
            channels for the "+CR without channel filter" ablation).
        time_grid: the video frame each latent frame stands for (``moft.models.pipeline.latent_time_grid``;
            default: every frame, for VAEs that keep time): the curves have one row per entry.

    Raises:
        TrajectoryError: a region with a ``zoom``: the linear position model of the region mean
            cannot express it (the content's displacement field grows from the centre and
            averages to zero); ``drag_target`` can.
    """
    if num_frames is not None and trajectory.frames != num_frames:
        raise TrajectoryError(f"frames: trajectory has {trajectory.frames} frames, the run makes {num_frames}")
    for region in trajectory.regions:
        if region.zoom != 1.0:  # a zoom moves content away from (or toward) the centre: zero mean displacement
            raise TrajectoryError(f"regions[{region.index}].zoom: a curves target cannot express a zoom (its mean "
                                  f"displacement over the region is zero); use the drag target (--target-kind drag)")
    idx = channels.indices if indices is None else torch.as_tensor(indices, dtype=torch.long)
    response = channels.response[idx]  # (d, 2)
    grid = list(range(trajectory.frames)) if time_grid is None else list(time_grid)
    base = baseline_curve(channels, len(grid))[:, idx]  # (F', d)
    curves = []
    for region in trajectory.regions:
        p = torch.from_numpy(np.asarray(region.path, dtype=np.float32))[grid]  # (F', 2) on the latent time grid
        curves.append(base + gain * (p - p.mean(0)) @ response.T)  # (F', d)
    masks = torch.from_numpy(trajectory.masks(*latent_size))  # (R, h, w)
    return Target(torch.stack(curves), masks, idx, True, None,
                  {"source": "trajectory", "trajectory": trajectory.to_dict(), "gain": gain,
                   "channels_site": channels.meta.get("site"), "channels_digest": channels.digest()})


def baseline_curve(channels: MotionChannels, num_frames: int) -> torch.Tensor:
    """The channels' direction-independent curve ``(F, C)``, resampled to ``num_frames`` (zeros if none)."""
    base = channels.baseline
    if base is None:
        return torch.zeros(num_frames, channels.num_channels)
    if base.shape[0] == num_frames:
        return base.float()
    x = torch.linspace(0, base.shape[0] - 1, num_frames)
    lo = x.floor().long().clamp(max=base.shape[0] - 2)
    frac = (x - lo)[:, None]
    out = base[lo] * (1 - frac) + base[lo + 1] * frac
    return out - out.mean(0)  # keep the zero frame mean of CR features


@torch.no_grad()
def reference_target(pipe, frames: np.ndarray, *, channels: MotionChannels | None, masks: torch.Tensor | None = None,
                     num_steps: int = 25, timestep: int = 200, content_removal: bool = True,
                     site: str | None = None, height: int | None = None, width: int | None = None,
                     source: str = "", mode: str = "inversion", seed: int = 0, progress=None,
                     timesteps: list | None = None, image_cond: dict | None = None) -> Target:
    """Target MOFT from a reference video by inversion (paper §4, official code) or one noised forward.

    Args:
        pipe: the pipeline that will be guided.
        frames: ``(F, H, W, 3)`` reference video (resized to the run's size).
        channels: motion channels, or None to keep all channels (ablations).
        masks: ``(R, h, w)`` regions; default one region covering the frame.
        num_steps, timestep: inversion schedule and the timestep whose features are taken (the
            nearest inversion step; official: step 5 of 25, t = 200).
        content_removal: remove the frame mean (False = the paper's "vanilla" feature).
        site: capture site.
        height, width: run size in pixels (default: the model's).
        mode: ``"inversion"`` (the paper) or ``"noise"`` (the video noised to the timestep, one
            forward: how FastVMT and FlowMotion take reference features on flow models).
        seed: the noise of ``mode="noise"``.
        progress: optional ``progress(done, total)`` per inversion step.
        timesteps: also take the target at each of these timesteps (``Target.timed_maps``; the
            guided steps' for ``GuidanceConfig(target_timesteps="guided")``): one inversion to the
            highest, or one noised forward each.
        image_cond: an image-to-video model's image conditioning (``moft.models.image.image_conditioning``):
            the reference is inverted as the model sees it, from that image.
    """
    f, h, w = default_video_size(pipe)
    height, width = height or h, width or w
    wanted = [timestep] + list(timesteps or [])
    refs = reference_features_many(pipe, frames, timesteps=wanted, num_steps=num_steps, site=site, mode=mode,
                                   seed=seed, height=height, width=width, progress=progress, image_cond=image_cond)
    size = (height // vae_scale(pipe), width // vae_scale(pipe))
    idx = channels.indices if channels is not None else None
    every = [moft(ref.features.float(), idx, size, content_removal=content_removal)[0] for ref in refs]  # [(F, d, h, w)]
    maps, ref = every[0], refs[0]
    if masks is None:
        masks = torch.ones(1, *size, dtype=torch.bool)
    curves = torch.stack([region_mean(maps[None], m)[0] for m in masks])  # (R, F, d)
    region_maps = maps[None].expand(len(masks), *maps.shape).clone()  # (R, F, d, h, w)
    timed = (torch.stack([m[None].expand(len(masks), *m.shape) for m in every[1:]]).clone()
             if timesteps else None)  # (S, R, F, d, h, w)
    meta = {"source": "reference", "video": source, "inversion_step": ref.step, "reference_mode": mode,
            "timestep": ref.timestep, "num_steps": num_steps, "frames": int(maps.shape[0])}
    if timesteps:
        meta["timesteps"] = [r.timestep for r in refs[1:]]
    return Target(curves, masks.bool(), idx, content_removal, region_maps, meta, timed)


def drag_target(pipe, source_frames: np.ndarray, trajectory, *, channels: MotionChannels | None,
                num_steps: int = 25, timestep: int = 200, site: str | None = None, progress=None,
                proxy: np.ndarray | None = None, mode: str = "inversion", timesteps: list | None = None,
                image_cond: dict | None = None) -> Target:
    """Per-position target from a trajectory: the inverted MOFT of the source dragged along it.

    Example:
        >>> src = sample(pipe, "a red disk standing still", seed=0)
        >>> target = drag_target(pipe, src.frames, traj, channels=channels)
        >>> target.maps.shape, target.masks.shape       # (R, F, d, h, w), (R, h, w) swept regions
        (torch.Size([1, 8, 6, 16, 16]), torch.Size([1, 16, 16]))

    Args:
        pipe: the pipeline that will be guided.
        source_frames: ``(F, H, W, 3)`` the unguided video of the same noise (frame 0 is dragged).
        trajectory: a parsed ``Trajectory`` with ``F`` frames.
        channels: motion channels, or None for all channels.
        num_steps, timestep, site, progress, mode, timesteps: as ``reference_target``.
        proxy: ``moft.method.drag.drag_video(source_frames, trajectory)`` if the caller already made it.
        image_cond: an image-to-video model's image conditioning; its source is then the image itself,
            repeated over the frames (no unguided video is needed).

    The regions are where each region passes (``moft.method.drag.swept_masks``): the loss compares maps
    there, and gradient masking lets the latents change there only.
    """
    f, h, w = source_frames.shape[:3]
    if trajectory.frames != f:
        raise TrajectoryError(f"frames: trajectory has {trajectory.frames} frames, the run makes {f}")
    proxy = drag_video(source_frames, trajectory) if proxy is None else proxy  # (F, H, W, 3)
    grid = (h // vae_scale(pipe), w // vae_scale(pipe))
    masks = torch.from_numpy(swept_masks(trajectory, (h, w), grid))  # (R, h, w)
    target = reference_target(pipe, (proxy * 255).round().astype(np.uint8), channels=channels, masks=masks,
                              num_steps=num_steps, timestep=timestep, site=site, height=h, width=w,
                              progress=progress, mode=mode, timesteps=timesteps, image_cond=image_cond)
    target.meta.update(source="drag", trajectory=trajectory.to_dict())
    target.meta.pop("video", None)
    return target

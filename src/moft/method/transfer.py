"""Motion transfer by dragging: a reference clip's motion measured per region and returned as a trajectory.

Example:
    >>> import numpy as np
    >>> from moft.io.trajectory import parse_trajectory
    >>> scene = np.random.default_rng(0).random((32, 32, 3))
    >>> clip = np.stack([np.roll(scene, (-f, 2 * f), axis=(0, 1)) for f in range(5)])  # (F, H, W, 3): 2 px right, 1 up
    >>> np.round(region_shifts(clip, np.ones((32, 32), bool))[-1], 1)                   # frame 4 over frame 0, px
    array([ 8., -4.])
    >>> camera = parse_trajectory({"version": 1, "frames": 5, "regions": [{"mask": "all", "zoom": 1.2}]})
    >>> copied = transfer_trajectory(clip, camera)
    >>> copied.regions[0].mask, np.round(copied.regions[0].path[-1] * 32, 1)             # from (16, 16)
    ('all', array([24., 12.]))

The paper copies a clip's motion by making its inverted MOFT the guidance target (``transfer="target"``,
``moft.method.targets.reference_target``). A model that gradient guidance does not move (the shipped
image-to-video organism: the target is matched while the content stays, ``docs/image-to-video.md``) is
steered by its drag levers instead (a cut-and-drag start, Time-to-Move's): ``transfer="drag"`` measures how
each of the trajectory's regions moves in the clip and drags the region (of the image, on image-to-video)
along that path, as if the user had drawn it. A region's motion is the sum of the shifts between
consecutive frames, each found by block matching (``frame_shift``: the whole-pixel shift of least mean squared
difference over the region's pixels, refined to sub-pixel by a parabola), the region following its content as
it moves. Translation only: a zoom or a rotation in the clip is not copied, and a region's own ``zoom`` or path
is replaced by the clip's motion.
"""

from __future__ import annotations

import numpy as np

from ..io.trajectory import Trajectory, parse_trajectory

MIN_STEP = 0.01  # px: a region that moves less between two frames is still (block matching's own noise on a still clip)


class TransferError(ValueError):
    """A reference clip or trajectory whose motion cannot be copied by dragging (one line)."""


def _moved(array: np.ndarray, dx: int, dy: int, fill) -> np.ndarray:
    """``array`` (H, W, ...) with its content moved by whole pixels: ``out[y + dy, x + dx] = array[y, x]``; what
    leaves the frame is dropped, what enters is ``fill``."""
    h, w = array.shape[:2]
    out = np.full(array.shape, fill, dtype=np.result_type(array, np.asarray(fill)))
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = array[max(0, -dy):h - max(0, dy),
                                                                      max(0, -dx):w - max(0, dx)]
    return out


def _vertex(left: float, mid: float, right: float) -> float:
    """The offset in (-0.5, 0.5) of the minimum of the parabola through three equally spaced costs."""
    curve = left - 2 * mid + right
    return float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5)) if curve > 0 and np.isfinite(curve) else 0.0


def frame_shift(before: np.ndarray, after: np.ndarray, region: np.ndarray, reach: int) -> np.ndarray:
    """The shift ``(dx, dy)`` px that best carries ``before``'s pixels in ``region`` onto ``after`` ((H, W, C)):
    the whole-pixel shift within ``reach`` of least mean squared difference over the region's pixels that stay in
    the frame, refined by a parabola through its neighbours' costs, taken over the pixels all three keep (block
    matching)."""
    before, after = (x[..., None] if x.ndim == 2 else x for x in (before, after))
    span = range(-reach, reach + 1)
    # each shift's squared difference per pixel, (H, W); NaN where the shifted pixel left the frame
    errors = {(dx, dy): ((before - _moved(after, -dx, -dy, np.nan)) ** 2).sum(-1) for dy in span for dx in span}
    enough = max(4, int(region.sum()) // 4)

    def cost(shifts, pixels=None):
        pixels = region & np.isfinite(sum(errors[d] for d in shifts)) if pixels is None else pixels
        return [float(errors[d][pixels].mean()) for d in shifts] if pixels.sum() >= enough else [np.inf] * len(shifts)

    best = min(errors, key=lambda d: cost([d])[0])
    out = np.array(best, float)
    for axis in (0, 1):  # the parabola along each axis, on the pixels the three shifts share
        step = np.eye(2, dtype=int)[axis]
        trio = [tuple(np.array(best) + k * step) for k in (-1, 0, 1)]
        if all(d in errors for d in trio):
            left, mid, right = cost(trio)
            out[axis] += _vertex(left, mid, right) if np.isfinite(mid) else 0.0
    return out


def region_shifts(clip: np.ndarray, mask: np.ndarray, reach: int | None = None) -> np.ndarray:
    """How the content inside ``mask`` moves through ``clip``, in pixels from frame 0 (see the module docstring).

    Args:
        clip: ``(F, H, W)`` grey levels or ``(F, H, W, C)`` colours (any scale).
        mask: ``(H, W)`` bool, the region in frame 0 (the whole frame: a camera's motion).
        reach: the largest shift between two frames looked for, px (default: a quarter of the shorter side).

    Returns:
        ``(F, 2)`` float64 displacement ``(dx, dy)`` of the region's content at each frame over frame 0 (row 0 is zero).
    """
    frames = np.asarray(clip, np.float64)
    frames = frames[..., None] if frames.ndim == 3 else frames  # (F, H, W, C)
    reach = reach or max(1, min(mask.shape) // 4)
    at = np.zeros(2)
    path = [at.copy()]
    for before, after in zip(frames[:-1], frames[1:]):
        # the region where it has got to (whole pixels), unless that has left the frame
        moved = _moved(mask, *np.round(at).astype(int), False)
        at = at + frame_shift(before, after, moved if moved.sum() >= 4 else mask, reach)
        path.append(at.copy())
    return np.stack(path)  # (F, 2)


def transfer_trajectory(reference: np.ndarray, trajectory: Trajectory | None = None) -> Trajectory:
    """The trajectory whose regions move as ``reference`` moves them: each region of ``trajectory`` (None: the whole
    frame, a camera's motion) with its path replaced by the clip's motion there (``region_shifts``).

    Args:
        reference: ``(F, H, W, 3)`` clip at the run's size and frame count.
        trajectory: the regions to copy the motion of, in frame fractions (their own motion is dropped).

    Returns:
        A ``Trajectory`` of ``F`` frames: each region's mask with per-frame ``segments`` (one a frame that moves).

    Raises:
        TransferError: a point region (its points are dragged by their own tracks, not a clip's).
    """
    f, h, w = reference.shape[:3]
    regions = trajectory.regions if trajectory is not None else None
    if regions is not None and any(r.tracks is not None for r in regions):
        raise TransferError("a reference clip's motion is copied onto regions with a mask; point regions follow "
                            "their own tracks (drop --reference, or give the regions as masks)")
    specs = []
    for mask_spec, mask in ([("all", np.ones((h, w), bool))] if regions is None else
                            [(r.mask, r.rasterize(h, w)) for r in regions]):
        steps = np.diff(region_shifts(reference, mask), axis=0)  # (F - 1, 2) px
        segments = [{"frames": [k, k], "direction": (step / (w, h)).tolist(),
                     "speed": min(1.0, float(np.hypot(*(step / (w, h)))))}
                    for k, step in enumerate(steps) if np.hypot(*step) >= MIN_STEP]
        # a still region: its path stays at its centroid (a zoom of no size)
        specs.append({"mask": mask_spec, **({"segments": segments} if segments else {"zoom": 1.0})})
    return parse_trajectory({"version": 1, "frames": f, "regions": specs})

"""Drag proxies: a trajectory rendered as a video by dragging the source's regions along their paths.

Example:
    >>> import numpy as np
    >>> from moft.method.drag import drag_video, swept_masks
    >>> from moft.io.trajectory import parse_trajectory
    >>> traj = parse_trajectory({"version": 1, "frames": 8, "regions": [
    ...     {"mask": {"box": [0.3, 0.3, 0.6, 0.6]}, "direction": "right", "speed": 0.05}]})
    >>> source = np.zeros((8, 32, 32, 3), np.float32)
    >>> source[0, 10:19, 10:19] = 1.0                # a white box under the region in frame 0
    >>> proxy = drag_video(source, traj)             # (F, H, W, 3): frame 0's box moving right
    >>> [round(float(np.nonzero(proxy[f, 14, :, 0] > 0.5)[0].mean()), 1) for f in (0, 7)]  # box centre x: 11.2 px on
    [14.0, 25.0]
    >>> masks = swept_masks(traj, (32, 32), (16, 16))  # (R, 16, 16) where each region passes
    >>> masks.shape, int(masks[0, 7].sum())            # swept along row 7: 11 of 16 cells
    ((1, 16, 16), 11)

Why: the paper synthesizes a target as region-mean MOFT curves. On moft-tiny those cannot steer
(``docs/results/tune_control.md``): a moving object's MOFT is a map with structure (what arrives
and what leaves), and its mean over a region averages that structure away. A reference video
gives per-position maps, but needs a video that already has the wanted motion. The drag proxy
makes one from the unguided video of the same noise: in every frame, each region's frame-0
content is pasted at the trajectory's displacement over frame 0 (the vacated area inpainted),
a camera pan (region ``"all"``) shifts the whole frame. A ``"zoom"`` scales the region's content
(or the whole frame, a camera zoom) about its centre instead of (or as well as) shifting it. DDIM-inverting the proxy
(``moft.method.targets.drag_target``) gives the per-position target; the model's own rendering of
the object is kept, only its motion is the trajectory's.

A point region (point drag) is a few points and their tracks, not an object: dragging its disks moves
a patch of the object and tears it (``docs/results/point_drag.md``). ``object_regions`` grows each
point into the object under it on the frame being dragged (the pixels joined to the point whose colour
is the point's, a flood fill) and drags that segment along the point's track, as DragAnything drags the
SAM mask under a user's click; points whose segments are one object move it together.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

# object_regions: a pixel joins a point's segment when its colour is within a tolerance (RGB distance, colours in
# [0, 1]) of the point's own (the median of its 3x3 pixels): the widest of SEGMENT_TOLERANCES whose fill has not
# leaked, i.e. is not over SEGMENT_MAX_AREA of the frame (none: the point keeps its disk); segments overlapping by
# SEGMENT_SAME_OBJECT (IoU) are one. The ladder: an organism's frame 0 often shades part of the object darker than the
# later frames render it, and a part left out of the segment stays behind as a second piece; on 128 tuning sources
# (moft-tiny-wan, seeds 950-957, 16 prompts) 0.25 alone left over 10% of the object out in 10, the ladder in 4, at the
# price of 6 segments reaching over 10% into the background instead of 1 (scripts/segment_tolerance.py,
# docs/results/moft-tiny-wan/segment_tolerance.md)
SEGMENT_TOLERANCES = (0.35, 0.3, 0.25)
SEGMENT_MAX_AREA = 0.5
SEGMENT_SAME_OBJECT = 0.5


def _warp(image: np.ndarray, matrix: np.ndarray, border: int) -> np.ndarray:
    """Warp ``(H, W, ...)`` by a 2x3 affine ``matrix`` (frame 0 -> frame f pixels), bilinear; ``border``: cv2 mode."""
    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.float32(matrix), (w, h), flags=cv2.INTER_LINEAR, borderMode=border)


def region_affine(region, f: int, h: int, w: int) -> np.ndarray:
    """The 2x3 affine taking region content from frame 0 to frame ``f``, in pixels.

    Example:
        >>> from moft.io.trajectory import parse_trajectory
        >>> traj = parse_trajectory({"version": 1, "frames": 3, "regions": [{"mask": "all", "zoom": 2.0}]})
        >>> region_affine(traj.regions[0], 2, 32, 32).round(2).tolist()   # 2x about the centre (15.5, 15.5)
        [[2.0, 0.0, -15.5], [0.0, 2.0, -15.5]]

    A point ``p`` of frame 0 goes to ``s_f * (p - c_0) + c_f``: ``c_f`` is the region's path
    position at frame ``f`` in pixel coordinates (pixel centres at integers, so a frame fraction
    ``x`` is ``x * W - 0.5``), ``s_f`` its scale (``Region.scales``). Without a zoom, a shift by
    ``path[f] - path[0]``.
    """
    size = np.array([w, h], dtype=np.float64)
    c0, cf = region.path[0] * size - 0.5, region.path[f] * size - 0.5  # (2,) px
    s = float(region.scales[f])
    return np.array([[s, 0.0, cf[0] - s * c0[0]], [0.0, s, cf[1] - s * c0[1]]])  # (2, 3)


def drag_video(frames: np.ndarray, trajectory) -> np.ndarray:
    """Frame 0 of ``frames`` with each trajectory region dragged along its path.

    Args:
        frames: ``(F, H, W, 3)`` video (float in [0, 1] or uint8); only frame 0 is used.
        trajectory: a parsed ``moft.io.trajectory.Trajectory`` with ``F`` frames.

    Returns:
        ``(F, H, W, 3)`` float32 in [0, 1]. Frame ``f`` shows region ``r``'s frame-0 content moved by
        ``path[f] - path[0]`` and scaled by ``scales[f]`` about its path position (``region_affine``);
        regions are pasted in file order (later on top). A ``"all"`` region moves and scales the
        whole frame (edges replicated), the camera pan and zoom proxy.
    """
    first = np.asarray(frames[0], dtype=np.float32)
    if first.ndim != 3 or first.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got {tuple(np.shape(frames))}")
    if np.asarray(frames).dtype == np.uint8:
        first = first / 255.0
    h, w = first.shape[:2]
    masks = trajectory.masks(h, w)  # (R, H, W)
    moving = masks[[r.mask != "all" for r in trajectory.regions]].any(0)  # (H, W); all False for pans only
    hole = moving.astype(np.uint8)
    background = first.copy()  # (H, W, 3): frame 0 with the moving regions inpainted
    if moving.any():
        filled = cv2.inpaint((first * 255).round().clip(0, 255).astype(np.uint8), hole, 3, cv2.INPAINT_TELEA)
        background[hole > 0] = filled[hole > 0] / 255.0
    out = np.empty((trajectory.frames, h, w, 3), np.float32)
    for f in range(trajectory.frames):
        canvas = background.copy()
        for region, mask in zip(trajectory.regions, masks):
            m = region_affine(region, f, h, w)  # (2, 3)
            if region.mask == "all":
                canvas = _warp(canvas, m, cv2.BORDER_REPLICATE)
                continue
            alpha = _warp(mask.astype(np.float32), m, cv2.BORDER_CONSTANT)[..., None]  # (H, W, 1)
            canvas = alpha * _warp(first, m, cv2.BORDER_REPLICATE) + (1 - alpha) * canvas
        out[f] = canvas
    return out.clip(0.0, 1.0)


def swept_masks(trajectory, size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Where each region passes over the video: the union of its mask moved (and scaled) along its path.

    Args:
        trajectory: a parsed ``Trajectory``.
        size: ``(H, W)`` pixels at which the masks are moved.
        grid: ``(h, w)`` of the result (the latent grid).

    Returns:
        ``(R, h, w)`` bool; a cell is in when any pixel of it is.
    """
    h, w = size
    out = []
    for region, mask in zip(trajectory.regions, trajectory.masks(h, w)):
        swept = np.zeros((h, w), np.float32)
        if region.mask == "all":
            swept[:] = 1.0
        for f in range(trajectory.frames):
            swept = np.maximum(swept, _warp(mask.astype(np.float32), region_affine(region, f, h, w), cv2.BORDER_CONSTANT))
        cells = cv2.resize(swept, (grid[1], grid[0]), interpolation=cv2.INTER_AREA)  # (h, w)
        out.append(cells > 0.0)
    return np.stack(out)


def point_colour(image: np.ndarray, x: int, y: int) -> np.ndarray:
    """A point's colour: the median of its 3x3 pixels (fewer at the frame's edge), ``(3,)``.

    Example:
        >>> img = np.zeros((4, 4, 3), np.float32); img[1, 1] = 1.0   # one white pixel: noise the median ignores
        >>> point_colour(img, 1, 1).tolist()
        [0.0, 0.0, 0.0]
    """
    return np.median(image[max(0, y - 1):y + 2, max(0, x - 1):x + 2].reshape(-1, 3), axis=0)  # (3,)


def grow_segment(frame: np.ndarray, seeds: np.ndarray, tolerance: float | tuple = SEGMENT_TOLERANCES,
                 max_area: float = SEGMENT_MAX_AREA) -> np.ndarray | None:
    """The object under some points: pixels 4-connected to a point through pixels of the point's colour.

    Example:
        >>> frame = np.zeros((16, 16, 3), np.float32); frame[4:9, 2:7] = (1.0, 0.2, 0.2)   # (H, W, 3): a red square
        >>> seg = grow_segment(frame, np.array([[4.0, 6.0]]))      # a point (x, y) px on it
        >>> int(seg.sum()), bool(seg[3:10, 1:8].all())             # the 5x5 square and the ring of pixels around it
        (49, True)
        >>> grow_segment(frame, np.array([[12.0, 12.0]])) is None  # on the background: it leaks over the frame
        True
        >>> frame[4:6, 2:7] = (0.75, 0.1, 0.1)                     # the square's top rows shaded darker (0.3 away)
        >>> int(grow_segment(frame, np.array([[4.0, 7.0]]), 0.25).sum()), int(grow_segment(frame, np.array([[4.0, 7.0]])).sum())
        (35, 49)

    Args:
        frame: ``(H, W, 3)`` float in [0, 1] or uint8.
        seeds: ``(N, 2)`` points (x, y) in pixels (pixel centres at integers); a point off the frame adds nothing.
        tolerance: RGB distance from the point's colour (the median of its 3x3 pixels) a pixel may have; or a
            sequence of them, widest first: the widest whose fill has not leaked (``SEGMENT_TOLERANCES``).
        max_area: the largest segment, a fraction of the frame; beyond it the fill leaked and None is returned.

    Returns:
        ``(H, W)`` bool: the union of the points' fills, grown by one pixel (the object's blurred rim), or None
        when no point is on the frame or the segment is over ``max_area`` (at every tolerance of a sequence).
    """
    if not np.isscalar(tolerance):  # the ladder: the first fill, widest first, that has not leaked
        return next((seg for t in tolerance if (seg := grow_segment(frame, seeds, t, max_area)) is not None), None)
    img = np.asarray(frame, dtype=np.float32)
    img = img / 255.0 if np.asarray(frame).dtype == np.uint8 else img  # (H, W, 3)
    h, w = img.shape[:2]
    seg = np.zeros((h, w), bool)
    for x, y in np.rint(np.asarray(seeds, dtype=np.float64)).astype(int):
        if not (0 <= x < w and 0 <= y < h):
            continue
        colour = point_colour(img, x, y)  # (3,)
        close = (np.linalg.norm(img - colour, axis=-1) <= tolerance).astype(np.uint8)  # (H, W)
        _, labels = cv2.connectedComponents(close, connectivity=4)
        seg |= (labels == labels[y, x]) & (close > 0)
    if not seg.any():
        return None
    seg = cv2.dilate(seg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return seg if seg.mean() <= max_area else None


def object_regions(trajectory, frame: np.ndarray):
    """The trajectory with each point region's disks replaced by the object its points are on (``grow_segment``
    on ``frame``, the frame being dragged); point regions whose objects are the same (IoU >= 0.5) become one
    region, moved by the mean of their paths. Other regions, and a point whose fill leaks, are kept as they are.

    Example:
        >>> from moft.io.trajectory import parse_trajectory
        >>> frame = np.zeros((16, 16, 3), np.float32); frame[4:9, 2:7] = (1.0, 0.2, 0.2)   # a red square
        >>> traj = parse_trajectory({"version": 1, "frames": 2, "regions": [      # two points on it, moving right
        ...     {"points": [[0.25, 0.4], [0.5, 0.4]], "radius": 0.05}, {"points": [[0.35, 0.35], [0.6, 0.35]], "radius": 0.05}]})
        >>> grown = object_regions(traj, frame)
        >>> len(grown.regions), int(grown.masks(16, 16).sum()), grown.regions[0].path[1].tolist()
        (1, 49, [0.55, 0.375])

    Args:
        trajectory: a parsed ``Trajectory``.
        frame: ``(H, W, 3)`` the frame the regions are dragged from (the image, or the unguided video's frame 0).

    Returns:
        a ``Trajectory`` (the same one when it has no point region).
    """
    h, w = np.asarray(frame).shape[:2]
    size = np.array([w, h], dtype=np.float64)
    grown = []  # [(region, segment or None)]
    for region in trajectory.regions:
        seg = None if region.tracks is None else grow_segment(frame, region.tracks[:, 0] * size - 0.5)  # (H, W)
        for k, (other, other_seg) in enumerate(grown):
            if seg is not None and other_seg is not None and (seg & other_seg).sum() >= SEGMENT_SAME_OBJECT * (
                    seg | other_seg).sum():  # the same object: one region, its points' tracks together
                tracks = np.concatenate([other.tracks, region.tracks])  # (N, F, 2)
                grown[k] = (replace(other, tracks=tracks, path=tracks.mean(0), displacements=np.diff(tracks.mean(0), axis=0),
                                    motion={"tracks": tracks.tolist(), "radius": other.radius}), other_seg | seg)
                break
        else:
            grown.append((region, seg))
    if all(seg is None for _, seg in grown):  # no object grown (so none merged): the trajectory as it was
        return trajectory
    regions = tuple(replace(r, index=i) if seg is None else replace(
        r, index=i, mask={"segment": r.tracks[:, 0].tolist()}, _grey=seg.astype(np.float32)) for i, (r, seg) in enumerate(grown))
    return replace(trajectory, regions=regions)

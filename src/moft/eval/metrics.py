"""Offline motion metrics: point tracks (LK, dense flow), camera motion, Motion Fidelity, path errors, PSNR/SSIM.

Two protocols use them (see docs/metrics.md):

* **General metrics** (any model, any content): point tracks inside a region, from OpenCV's
  pyramidal Lucas-Kanade (``track_points``) or integrated dense optical flow (``flow_tracks``);
  camera motion as the median flow outside the regions (``camera_motion``); Motion Fidelity
  between track sets (``motion_fidelity``); ObjMC-style mean distance to requested tracks
  (``objmc``). These are LK/flow figures, *not* CoTracker figures: they are not comparable with
  the numbers peers report with CoTracker.
* **Synthetic-object protocol** (the shipped model's coloured organisms only): the object is
  segmented by its colour and followed by its centroid (``track_centroid``).

Conventions: coordinates are pixels with x to the right and y down, pixel
centres at integer positions (the top-left pixel is at (0, 0)). A set of point
tracks is an ``(N, F, 2)`` float array holding (x, y) per frame, NaN where a
point is lost; a single path is ``(F, 2)``. Videos are ``(F, H, W, 3)`` uint8
or float in [0, 1]. Displacements are those of the *content*: a camera panning
right moves the content left (negative dx).

Example:
    >>> import numpy as np
    >>> from moft.eval.metrics import track_points, motion_fidelity, camera_motion
    >>> rng = np.random.default_rng(0)
    >>> texture = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    >>> video = np.stack([np.roll(texture, k, axis=1) for k in range(6)])   # content moves right 1 px/frame
    >>> tracks = track_points(video)                                        # (N, 6, 2)
    >>> round(float(np.nanmedian(np.diff(tracks, axis=1)[..., 0])), 2)
    1.0
    >>> motion_fidelity(tracks, tracks)
    1.0
    >>> camera_motion(video)[0].round(1) + 0.0                              # median flow, frame 0 -> 1
    array([1., 0.])
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..io.video import to_float, to_uint8

__all__ = [
    "track_points",
    "region_points",
    "region_tracks",
    "optical_flow",
    "flow_tracks",
    "camera_motion",
    "mean_path",
    "request_tracks",
    "track_centroid",
    "motion_fidelity",
    "objmc",
    "trajectory_error",
    "direction_success",
    "steering",
    "path_fit",
    "zoom_scale",
    "zoom_success",
    "frame_change",
    "glitch",
    "object_pieces",
    "split",
    "psnr",
    "ssim",
    "ssim_map",
    "angle_between",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _grey_uint8(video: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) or (F, H, W) uint8/float video -> (F, H, W) uint8 grey."""
    video = to_uint8(np.asarray(video))
    if video.ndim == 3:
        return np.ascontiguousarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must have shape (F, H, W, 3) or (F, H, W), got {video.shape}")
    return np.stack([cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in video])


def _as_video(video: np.ndarray, name: str = "video") -> np.ndarray:
    """Accept (F, H, W, C) or a single (H, W, C) frame; return (F, H, W, C)."""
    video = np.asarray(video)
    if video.ndim == 3:
        video = video[None]
    if video.ndim != 4:
        raise ValueError(f"{name} must have shape (F, H, W, C) or (H, W, C), got {video.shape}")
    return video


def _first_last_valid(path: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """First and last rows of an (F, 2) path with both coordinates finite."""
    valid = np.all(np.isfinite(path), axis=-1)  # (F,)
    if not valid.any():
        return None
    indices = np.flatnonzero(valid)
    return path[indices[0]], path[indices[-1]]


def _check_path(path: np.ndarray, name: str) -> np.ndarray:
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 2:
        raise ValueError(f"{name} must have shape (F, 2), got {path.shape}")
    return path


def _check_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (height, width):
        raise ValueError(f"mask must have shape {(height, width)}, got {mask.shape}")
    return mask


def _check_points(points: np.ndarray) -> np.ndarray:
    """(N, 2) finite (x, y) start points as float32."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2) if np.size(points) else np.zeros((0, 2))
    if not np.all(np.isfinite(points)):
        raise ValueError("points must be finite")
    return points.astype(np.float32)


def angle_between(u, v) -> float:
    """Unsigned angle between two 2-D vectors, in degrees.

    Example:
        >>> angle_between((1, 0), (0, 1))
        90.0

    Args:
        u: Vector (2,).
        v: Vector (2,).

    Returns:
        Angle in [0, 180]; NaN if either vector has zero length or is not finite.
    """
    u = np.asarray(u, dtype=np.float64).reshape(2)
    v = np.asarray(v, dtype=np.float64).reshape(2)
    nu, nv = float(np.hypot(*u)), float(np.hypot(*v))
    if not (np.isfinite(nu) and np.isfinite(nv)) or nu == 0.0 or nv == 0.0:
        return float("nan")
    # atan2 of cross and dot is accurate for small and near-180 angles alike
    cross = u[0] * v[1] - u[1] * v[0]
    dot = u[0] * v[0] + u[1] * v[1]
    return float(np.degrees(np.arctan2(abs(cross), dot)))


# ---------------------------------------------------------------------------
# tracking
# ---------------------------------------------------------------------------


def track_points(
    video: np.ndarray,
    *,
    max_points: int = 200,
    mask: np.ndarray | None = None,
    quality: float = 0.01,
    min_distance: float = 3,
    win_size: int | None = None,
    max_level: int | None = None,
    fb_threshold: float | None = 1.0,
    points: np.ndarray | None = None,
) -> np.ndarray:
    """Track points of frame 0 through the video with pyramidal Lucas-Kanade (OpenCV).

    Example:
        >>> tracks = track_points(video, max_points=100)        # doctest: +SKIP
        >>> disp = np.nanmean(np.diff(tracks, axis=1), axis=(0, 1))  # doctest: +SKIP

    Points are ``points`` if given, else ``cv2.goodFeaturesToTrack`` corners of frame 0 (inside
    ``mask``); they are tracked
    frame to frame with ``cv2.calcOpticalFlowPyrLK``. A point whose status is
    0, which leaves the frame, or whose forward-backward error (track to
    frame k, then back to k - 1) exceeds ``fb_threshold`` is NaN from then on.
    The forward-backward check removes the wild jumps LK makes for points
    about to leave the frame or on occlusion boundaries.

    Args:
        video: ``(F, H, W, 3)`` (or grey ``(F, H, W)``) uint8 or float [0, 1].
        max_points: Maximum number of corners.
        mask: Optional ``(H, W)`` bool; corners are only taken where True.
        quality: ``qualityLevel`` of goodFeaturesToTrack (relative to the best corner).
        min_distance: Minimum distance between corners, pixels.
        win_size: LK window side; default 7 for frames under 64 px, 15 under
            256 px, else 21.
        max_level: LK pyramid levels; default 1, 2 or 3 by the same size rule.
        fb_threshold: Maximum forward-backward error in pixels; None turns
            the check off (half the cost).
        points: Optional ``(N, 2)`` (x, y) start points in frame 0 (e.g. ``region_points``);
            ``mask``, ``max_points``, ``quality`` and ``min_distance`` are then unused.

    Returns:
        ``(N, F, 2)`` float64 (x, y) tracks; ``N`` may be 0 (flat frames).
    """
    grey = _grey_uint8(video)  # (F, H, W)
    num_frames, height, width = grey.shape
    small = min(height, width)
    if win_size is None:
        win_size = 7 if small < 64 else 15 if small < 256 else 21
    if max_level is None:
        max_level = 1 if small < 64 else 2 if small < 256 else 3

    if points is not None:
        points = _check_points(points)
    else:
        feature_mask = None
        if mask is not None:
            feature_mask = _check_mask(mask, height, width).astype(np.uint8) * 255
        corners = cv2.goodFeaturesToTrack(
            grey[0], maxCorners=int(max_points), qualityLevel=float(quality),
            minDistance=float(min_distance), mask=feature_mask, blockSize=3,
        )
        if corners is None or max_points < 1:
            return np.zeros((0, num_frames, 2))
        points = corners.reshape(-1, 2).astype(np.float32)  # (N, 2)
    if len(points) == 0:
        return np.zeros((0, num_frames, 2))
    tracks = np.full((len(points), num_frames, 2), np.nan)  # (N, F, 2)
    tracks[:, 0] = points
    alive = np.ones(len(points), dtype=bool)  # (N,)

    lk = dict(
        winSize=(int(win_size), int(win_size)), maxLevel=int(max_level),
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    )
    for k in range(1, num_frames):
        index = np.flatnonzero(alive)
        if len(index) == 0:
            break
        prev_pts = points[index].reshape(-1, 1, 2)
        next_pts, status, _ = cv2.calcOpticalFlowPyrLK(grey[k - 1], grey[k], prev_pts, None, **lk)
        next_pts = next_pts.reshape(-1, 2)  # (n, 2)
        ok = status.reshape(-1).astype(bool)
        ok &= np.all(np.isfinite(next_pts), axis=1)
        ok &= (next_pts[:, 0] >= 0) & (next_pts[:, 0] <= width - 1)
        ok &= (next_pts[:, 1] >= 0) & (next_pts[:, 1] <= height - 1)
        if fb_threshold is not None:
            back_pts, back_status, _ = cv2.calcOpticalFlowPyrLK(
                grey[k], grey[k - 1], next_pts.reshape(-1, 1, 2).astype(np.float32), None, **lk
            )
            fb_error = np.linalg.norm(back_pts.reshape(-1, 2) - prev_pts.reshape(-1, 2), axis=1)
            ok &= back_status.reshape(-1).astype(bool) & (fb_error <= fb_threshold)
        alive[index[~ok]] = False
        points[index[ok]] = next_pts[ok]
        tracks[index[ok], k] = next_pts[ok]
    return tracks


def region_points(mask: np.ndarray, *, spacing: float = 2.0, max_points: int = 400) -> np.ndarray:
    """A regular grid of start points inside a region (for trackers on flat or smooth content).

    Example:
        >>> mask = np.zeros((8, 8), bool); mask[2:6, 2:6] = True
        >>> region_points(mask, spacing=2).tolist()
        [[2.0, 2.0], [4.0, 2.0], [2.0, 4.0], [4.0, 4.0]]

    Args:
        mask: ``(H, W)`` bool region.
        spacing: Grid step in pixels; widened as needed to keep at most ``max_points``.
        max_points: Upper bound on the number of points.

    Returns:
        ``(N, 2)`` float64 (x, y) pixel centres inside ``mask``, row by row.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {mask.shape}")
    step = max(1, int(round(spacing)))
    step = max(step, int(math.ceil(math.sqrt(mask.sum() / max(1, int(max_points))))))
    ys, xs = np.nonzero(mask[::step, ::step])
    return np.stack([xs * step, ys * step], axis=1).astype(np.float64)  # (N, 2)


def region_tracks(video: np.ndarray, mask: np.ndarray, *, method: str = "lk", inset: int = 2) -> np.ndarray:
    """Point tracks of a frame-0 region, as ``moft evaluate`` takes them.

    Example:
        >>> tracks = region_tracks(video, traj.regions[0].rasterize(h, w))   # doctest: +SKIP

    Seeds lie ``inset`` px inside the region (corners on its edge straddle the region and the
    ground, and LK windows there are pulled toward the still side), unless that leaves under 16
    pixels. ``"lk"``: ``track_points`` from the corners there, or from a 2-px grid
    (``region_points``) when there are under 4 corners (flat content); ``"dis"`` /
    ``"farneback"``: ``flow_tracks`` from a 2-px grid.

    Args:
        video: ``(F, H, W, 3)`` or ``(F, H, W)`` uint8 or float [0, 1].
        mask: ``(H, W)`` bool region in frame 0.
        method: ``"lk"``, ``"dis"`` or ``"farneback"``.
        inset: Pixels to keep away from the region's edge.

    Returns:
        ``(N, F, 2)`` float64 tracks.
    """
    grey = _grey_uint8(video)  # (F, H, W)
    mask = _check_mask(mask, *grey.shape[1:])
    if inset > 0:
        side = 2 * int(inset) + 1
        inner = cv2.erode(mask.astype(np.uint8), np.ones((side, side), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
        mask = inner if inner.sum() >= 16 else mask
    if method != "lk":
        return flow_tracks(grey, mask=mask, method=method, spacing=2, max_points=200)
    tracks = track_points(grey, mask=mask)
    if len(tracks) < 4:
        tracks = track_points(grey, points=region_points(mask, spacing=2, max_points=200))
    return tracks  # (N, F, 2)


FLOW_METHODS = ("dis", "farneback")


def optical_flow(video: np.ndarray, *, method: str = "dis", backward: bool = False) -> np.ndarray:
    """Dense optical flow between consecutive frames (OpenCV DIS or Farneback).

    Example:
        >>> flow = optical_flow(video)              # doctest: +SKIP
        >>> flow.shape                              # (F - 1, H, W, 2): (dx, dy) of frame k -> k + 1  # doctest: +SKIP

    DIS uses the ``MEDIUM`` preset (8-px patches, variational refinement) down to full resolution
    (finest scale 0; the preset stops at half resolution, which biases sub-pixel motion). Farneback
    uses pyramid scale 0.5, 3 levels, window 9 (7 under 64 px), 3 iterations, poly_n 5, sigma 1.1.

    Args:
        video: ``(F, H, W, 3)`` or ``(F, H, W)`` uint8 or float [0, 1].
        method: ``"dis"`` or ``"farneback"``.
        backward: Flow from frame k + 1 to frame k instead.

    Returns:
        ``(F - 1, H, W, 2)`` float32: at pixel (y, x) of the first frame of the pair, the (dx, dy)
        to its position in the second.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"method must be one of {', '.join(FLOW_METHODS)}, got {method!r}")
    grey = _grey_uint8(video)  # (F, H, W)
    num_frames, height, width = grey.shape
    small = min(height, width) < 64
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis.setFinestScale(0)  # the preset stops at half resolution: sub-pixel bias on small frames
    flows = np.zeros((max(num_frames - 1, 0), height, width, 2), np.float32)  # (F-1, H, W, 2)
    for k in range(num_frames - 1):
        a, b = (grey[k + 1], grey[k]) if backward else (grey[k], grey[k + 1])
        if method == "dis":
            flow = dis.calc(a, b, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 7 if small else 9, 3, 5, 1.1, 0)
        flows[k] = flow
    return flows


def _sample(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear (H, W, 2) field at (N, 2) float points (replicated borders) -> (N, 2)."""
    xy = points.astype(np.float32).reshape(-1, 1, 2)
    out = cv2.remap(field, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 2).astype(np.float64)


def flow_tracks(
    video: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    points: np.ndarray | None = None,
    method: str = "dis",
    spacing: float = 2.0,
    max_points: int = 400,
    fb_threshold: float | None = 1.0,
) -> np.ndarray:
    """Point tracks by integrating dense optical flow along the frames.

    Example:
        >>> tracks = flow_tracks(video, mask=region)      # doctest: +SKIP

    Start points are ``points``, else a grid in ``mask`` (``region_points``), else a grid over the
    frame. Each point moves by the bilinearly sampled forward flow of its current position. With
    ``fb_threshold`` the backward flow is computed too, and a point whose forward-backward error
    ``|f(p) + b(p + f(p))|`` exceeds it (an occlusion or a flow failure) is NaN from then on, as
    is a point that leaves the frame.

    Args:
        video: ``(F, H, W, 3)`` or ``(F, H, W)`` uint8 or float [0, 1].
        mask: Optional ``(H, W)`` bool region for the grid.
        points: Optional ``(N, 2)`` (x, y) start points.
        method: ``"dis"`` or ``"farneback"`` (``optical_flow``).
        spacing: Grid step in pixels.
        max_points: Largest grid.
        fb_threshold: Maximum forward-backward error in pixels; None: no check (half the cost).

    Returns:
        ``(N, F, 2)`` float64 (x, y) tracks.
    """
    grey = _grey_uint8(video)  # (F, H, W)
    num_frames, height, width = grey.shape
    if points is None:
        region = np.ones((height, width), bool) if mask is None else _check_mask(mask, height, width)
        points = region_points(region, spacing=spacing, max_points=max_points)
    points = _check_points(points).astype(np.float64)  # (N, 2)
    tracks = np.full((len(points), num_frames, 2), np.nan)  # (N, F, 2)
    tracks[:, 0] = points
    if len(points) == 0 or num_frames < 2:
        return tracks
    forward = optical_flow(grey, method=method)  # (F-1, H, W, 2)
    backward = optical_flow(grey, method=method, backward=True) if fb_threshold is not None else None
    alive = np.ones(len(points), dtype=bool)  # (N,)
    for k in range(num_frames - 1):
        step = _sample(forward[k], points)  # (N, 2)
        moved = points + step
        ok = alive & np.all(np.isfinite(moved), axis=1)
        ok &= (moved[:, 0] >= 0) & (moved[:, 0] <= width - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= height - 1)
        if backward is not None:
            error = np.linalg.norm(step + _sample(backward[k], moved), axis=1)
            ok &= error <= fb_threshold
        alive = ok
        points = np.where(ok[:, None], moved, points)
        tracks[ok, k + 1] = moved[ok]
    return tracks


def camera_motion(
    video: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    method: str = "dis",
    flow: np.ndarray | None = None,
) -> np.ndarray:
    """Global (camera) motion: the median dense flow per frame pair, outside ``exclude``.

    Example:
        >>> pan = camera_motion(video, exclude=object_mask)   # doctest: +SKIP
        >>> pan.sum(0)            # net content displacement (dx, dy) over the clip  # doctest: +SKIP

    The median is robust to objects covering under half of the counted pixels; pass the moving
    objects' region as ``exclude`` when they are large. A camera panning right moves the content
    left: negative dx.

    Args:
        video: ``(F, H, W, 3)`` or ``(F, H, W)`` uint8 or float [0, 1].
        exclude: Optional ``(H, W)`` or ``(F, H, W)`` bool of pixels to leave out (frame k's mask
            applies to the pair k -> k + 1).
        method: ``"dis"`` or ``"farneback"``.
        flow: Optional precomputed ``optical_flow(video)``.

    Returns:
        ``(F - 1, 2)`` float64 (dx, dy) per frame pair; NaN rows where no pixel is counted.
    """
    grey = _grey_uint8(video)  # (F, H, W)
    num_frames, height, width = grey.shape
    flow = optical_flow(grey, method=method) if flow is None else np.asarray(flow)  # (F-1, H, W, 2)
    if flow.shape != (max(num_frames - 1, 0), height, width, 2):
        raise ValueError(f"flow must have shape {(num_frames - 1, height, width, 2)}, got {flow.shape}")
    if exclude is None:
        keep = np.ones((num_frames, height, width), bool)
    else:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape == (height, width):
            exclude = np.broadcast_to(exclude, (num_frames, height, width))
        elif exclude.shape != (num_frames, height, width):
            raise ValueError(f"exclude must have shape (H, W) or (F, H, W), got {exclude.shape}")
        keep = ~exclude
    out = np.full((len(flow), 2), np.nan)  # (F-1, 2)
    for k in range(len(flow)):
        if keep[k].any():
            out[k] = np.median(flow[k][keep[k]], axis=0)
    return out


def mean_path(tracks: np.ndarray) -> np.ndarray:
    """One path for a set of tracks: their mean start, then the mean displacement per frame.

    Example:
        >>> t = np.array([[[0, 0], [1, 0], [2, 0]], [[4, 4], [5, 4], [np.nan, np.nan]]], float)
        >>> mean_path(t).tolist()
        [[2.0, 2.0], [3.0, 2.0], [4.0, 2.0]]

    Each frame-to-frame step is averaged over the points valid in both frames, so points lost
    on the way do not drag the path toward the others' positions. The path is NaN from the
    first step no point survives.

    Args:
        tracks: ``(N, F, 2)`` pixels, NaN where lost.

    Returns:
        ``(F, 2)`` float64; all NaN if there are no tracks.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    if tracks.ndim != 3 or tracks.shape[-1] != 2:
        raise ValueError(f"tracks must have shape (N, F, 2), got {tracks.shape}")
    num_frames = tracks.shape[1]
    path = np.full((num_frames, 2), np.nan)  # (F, 2)
    start = np.all(np.isfinite(tracks[:, 0]), axis=1)
    if not start.any():
        return path
    path[0] = tracks[start, 0].mean(axis=0)
    steps = np.diff(tracks, axis=1)  # (N, F-1, 2)
    for k in range(num_frames - 1):
        valid = np.all(np.isfinite(steps[:, k]), axis=1)
        if not valid.any():
            break
        path[k + 1] = path[k] + steps[valid, k].mean(axis=0)
    return path


def request_tracks(points: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Requested tracks: every start point follows the displacements of a requested path.

    Example:
        >>> request_tracks(np.array([[1.0, 1.0]]), np.array([[5.0, 5.0], [7.0, 5.0]])).tolist()
        [[[1.0, 1.0], [3.0, 1.0]]]

    Args:
        points: ``(N, 2)`` start points (frame 0), pixels.
        path: ``(F, 2)`` requested path, pixels (only its displacements matter).

    Returns:
        ``(N, F, 2)`` float64: ``points[n] + path[k] - path[0]``.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    path = _check_path(path, "path")
    return points[:, None, :] + (path - path[0])[None]  # (N, F, 2)


def color_mask(video: np.ndarray, color, threshold: float | None = None) -> np.ndarray:
    """``(F, H, W)`` bool: the pixels within ``threshold`` (RGB distance in [0, 1] units, default 0.25) of ``color``
    (RGB in [0, 1] or 0-255): how the synthetic-object protocol segments the shipped organisms' flat objects."""
    video = to_float(_as_video(video)).astype(np.float32)  # (F, H, W, 3)
    color = np.asarray(color, dtype=np.float32).reshape(3)
    if color.max() > 1.0:
        color = color / 255.0
    threshold = 0.25 if threshold is None else float(threshold)
    return np.linalg.norm(video - color, axis=-1) < threshold  # (F, H, W)


def track_centroid(
    video: np.ndarray,
    *,
    color=None,
    mask: np.ndarray | None = None,
    background: np.ndarray | None = None,
    threshold: float | None = None,
    min_area: int = 4,
    max_jump: float | None = None,
) -> np.ndarray:
    """Follow one object by the centroid of its segmented pixels (the synthetic-object protocol).

    Meant for the shipped model's flat coloured organisms, where a colour picks the object out;
    on real footage use point tracks (``track_points``, ``flow_tracks``) instead.

    Example:
        >>> path = track_centroid(video, color=(255, 0, 0))       # (F, 2) red object  # doctest: +SKIP
        >>> path = track_centroid(video, mask=first_frame_box)     # moving-foreground mode  # doctest: +SKIP

    Segmentation, per frame:

    * ``color`` given (RGB, floats in [0, 1] or 0..255 values; read as 0..255
      when any component exceeds 1): foreground = pixels whose RGB Euclidean
      distance to it (in [0, 1] units) is below ``threshold`` (default 0.25).
    * otherwise: foreground = pixels whose RGB distance to the background is
      above ``threshold`` (default 0.15). The background is ``background``
      (``(H, W, 3)``) if given, else the per-pixel temporal median, which
      assumes every pixel shows background in more than half of the frames.

    Connected components (8-connectivity, at least ``min_area`` pixels) are
    then chosen: while no object has been found yet, the component overlapping
    ``mask`` most (or the largest one, without mask); afterwards, the
    component whose centroid is nearest to the last found centroid, if it is
    within ``max_jump`` pixels per frame elapsed since then (so a vanished
    object gives NaN instead of a jump to a distractor).

    Args:
        video: ``(F, H, W, 3)`` uint8 or float [0, 1].
        color: Object colour, or None for the background-difference mode.
        mask: Optional ``(H, W)`` bool restricting the initial choice.
        background: Optional ``(H, W, 3)`` static background (uint8 or float).
        threshold: Colour distance threshold in [0, 1] RGB units (max sqrt(3)).
        min_area: Smaller components are ignored.
        max_jump: Largest centroid move per frame, pixels; default
            ``0.2 * max(H, W)``. ``math.inf`` disables the limit.

    Returns:
        ``(F, 2)`` float64 (x, y) centroids; NaN rows where nothing was found.
    """
    video = to_float(_as_video(video)).astype(np.float32)  # (F, H, W, 3)
    if video.shape[-1] != 3:
        raise ValueError(f"video must have 3 channels, got {video.shape}")
    num_frames, height, width, _ = video.shape

    if color is not None:
        foreground = color_mask(video, color, threshold)  # (F, H, W)
    else:
        if background is None:
            background = np.median(video, axis=0)  # (H, W, 3)
        else:
            background = to_float(np.asarray(background))
            if background.shape != (height, width, 3):
                raise ValueError(f"background must have shape {(height, width, 3)}, got {background.shape}")
        threshold = 0.15 if threshold is None else float(threshold)
        distance = np.linalg.norm(video - background[None], axis=-1)  # (F, H, W)
        foreground = distance > threshold

    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask must have shape {(height, width)}, got {mask.shape}")

    if max_jump is None:
        max_jump = 0.2 * max(height, width)
    path = np.full((num_frames, 2), np.nan)  # (F, 2)
    last, last_k = None, 0  # last found centroid (x, y) and its frame
    for k in range(num_frames):
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(
            foreground[k].astype(np.uint8), connectivity=8
        )
        areas = stats[1:, cv2.CC_STAT_AREA]  # (C,) label 0 is the background
        keep = np.flatnonzero(areas >= min_area) + 1  # component labels
        if len(keep) == 0:
            continue
        if last is not None:
            distances = np.linalg.norm(centroids[keep] - last, axis=1)
            if distances.min() > max_jump * (k - last_k):
                continue
            chosen = keep[np.argmin(distances)]
        elif mask is not None:
            overlap = np.bincount(labels[mask], minlength=count)[keep]
            if overlap.max() == 0:
                continue
            chosen = keep[np.argmax(overlap)]
        else:
            chosen = keep[np.argmax(stats[keep, cv2.CC_STAT_AREA])]
        last, last_k = centroids[chosen].astype(np.float64), k
        path[k] = last
    return path


# ---------------------------------------------------------------------------
# Motion Fidelity
# ---------------------------------------------------------------------------


def _pair_correlations(tracks: np.ndarray, reference: np.ndarray, still_threshold: float) -> np.ndarray:
    """(N, F, 2), (M, F, 2) -> (N, M) mean per-frame displacement cosines."""
    def parts(t):
        v = np.diff(t, axis=1)  # (N, K, 2), K = F - 1
        finite = np.all(np.isfinite(v), axis=-1)  # (N, K)
        norm = np.where(finite, np.linalg.norm(np.where(finite[..., None], v, 0.0), axis=-1), 0.0)
        moving = finite & (norm >= still_threshold)
        still = finite & ~moving
        unit = np.where(moving[..., None], v / np.where(moving, norm, 1.0)[..., None], 0.0)  # (N, K, 2)
        return unit, moving, still, finite

    u, _, still_u, fin_u = parts(tracks)
    w, _, still_w, fin_w = parts(reference)
    # moving-moving pairs contribute their cosine (unit is 0 elsewhere),
    # still-still pairs contribute 1, still-moving pairs 0; all valid frames count.
    total = np.einsum("nkd,mkd->nm", u, w)  # (N, M)
    total += still_u.astype(np.float64) @ still_w.T.astype(np.float64)
    count = fin_u.astype(np.float64) @ fin_w.T.astype(np.float64)  # (N, M)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def motion_fidelity(tracks: np.ndarray, reference_tracks: np.ndarray, *, still_threshold: float = 0.1) -> float:
    """Motion Fidelity of two sets of point tracks (MOFT paper Eq. 5-6, after SMM), halved to [-1, 1].

    Example:
        >>> right = np.stack([np.arange(4.0), np.zeros(4)], axis=1)[None]     # (1, 4, 2): 1 px/frame right
        >>> down = right[..., ::-1]                                           # 1 px/frame down
        >>> motion_fidelity(right, right), motion_fidelity(right, down)
        (1.0, 0.0)
        >>> motion_fidelity(np.concatenate([right, down]), right)             # (1/2) (1 + (1 + 0) / 2)
        0.75

    corr(tau, tau~) is the mean over frames k of the cosine between the
    frame-to-frame displacements v_k and v~_k (Eq. 5). A frame counts when both
    displacements are finite; if both have length below ``still_threshold``
    it scores 1 (both still), if only one does it scores 0, else the cosine
    (the paper leaves the cosine of a zero displacement undefined). A pair with
    no frame valid in both has corr 0. Tracks without any finite displacement
    carry no motion and are dropped first.

    The paper's Eq. 6 is the *sum* ``mean_{tau~} max_tau corr + mean_tau max_{tau~} corr``
    (so it reaches 2); this returns half of it, so identical motion scores 1 and the value is
    symmetric in its arguments and lies in [-1, 1] (x 100 for the paper's tables, whose scaling
    is not stated). SMM's public script computes only one of the two terms. Peers track with
    CoTracker; fed LK or flow tracks (``track_points``, ``flow_tracks``) this is an LK/flow
    Motion Fidelity, not comparable with CoTracker figures.

    Args:
        tracks: ``(N, F, 2)`` tracks (pixels), NaN where lost.
        reference_tracks: ``(M, F, 2)`` tracks with the same F (a reference clip's tracks, or
            ``request_tracks`` of a requested path).
        still_threshold: Displacement length (pixels per frame) below which a
            point counts as still in that frame.

    Returns:
        The score; NaN if either set is empty (after dropping motionless
        tracks) or F < 2. Cost is O(N M F) in BLAS matrix products.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    reference = np.asarray(reference_tracks, dtype=np.float64)
    for name, t in (("tracks", tracks), ("reference_tracks", reference)):
        if t.ndim != 3 or t.shape[-1] != 2:
            raise ValueError(f"{name} must have shape (N, F, 2), got {t.shape}")
    if tracks.shape[1] != reference.shape[1]:
        raise ValueError(f"frame counts differ: {tracks.shape[1]} vs {reference.shape[1]}")
    if tracks.shape[1] < 2:
        return float("nan")

    def informative(t):
        finite = np.all(np.isfinite(np.diff(t, axis=1)), axis=-1)  # (N, K)
        return t[finite.any(axis=1)]

    tracks, reference = informative(tracks), informative(reference)
    if len(tracks) == 0 or len(reference) == 0:
        return float("nan")
    corr = _pair_correlations(tracks, reference, still_threshold)  # (N, M)
    score = 0.5 * (corr.max(axis=0).mean() + corr.max(axis=1).mean())
    return float(np.clip(score, -1.0, 1.0))


def objmc(tracks: np.ndarray, requested: np.ndarray) -> float:
    """ObjMC-style error: mean distance in pixels between tracks and the tracks requested of them.

    Example:
        >>> t = np.zeros((2, 3, 2)); want = t + [3.0, 4.0]
        >>> objmc(t, want)
        5.0

    MotionCtrl's ObjMC is the mean Euclidean distance between the generated and the requested
    trajectories, over points and frames. Here the generated ones are LK/flow tracks (peers use
    CoTracker), and each point's request is usually ``request_tracks`` of its own start. Entries
    where either is NaN are skipped.

    Args:
        tracks: ``(N, F, 2)`` pixels.
        requested: ``(N, F, 2)`` pixels, or one ``(F, 2)`` path for every track.

    Returns:
        Mean distance in pixels of the frame it was measured at; NaN when nothing is valid.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    requested = np.asarray(requested, dtype=np.float64)
    if tracks.ndim != 3 or tracks.shape[-1] != 2:
        raise ValueError(f"tracks must have shape (N, F, 2), got {tracks.shape}")
    if requested.ndim == 2:
        requested = requested[None]
    if requested.shape[1:] != tracks.shape[1:] or requested.shape[0] not in (1, tracks.shape[0]):
        raise ValueError(f"requested must have shape (N, F, 2) or (F, 2) matching {tracks.shape}, got {requested.shape}")
    distance = np.linalg.norm(tracks - requested, axis=-1)  # (N, F)
    valid = np.isfinite(distance)
    return float(distance[valid].mean()) if valid.any() else float("nan")


# ---------------------------------------------------------------------------
# path metrics
# ---------------------------------------------------------------------------


def trajectory_error(tracked: np.ndarray, requested: np.ndarray, *, height: int, width: int) -> float:
    """Mean distance between a tracked and a requested path, as a fraction of the frame.

    Example:
        >>> trajectory_error(track_centroid(video, color=red), requested, height=256, width=256)  # doctest: +SKIP

    x is divided by ``width`` and y by ``height`` before taking the per-frame
    Euclidean distance (the paper's Mean Distance); frames where either path
    is NaN are skipped.

    Args:
        tracked: ``(F, 2)`` pixels.
        requested: ``(F, 2)`` pixels.
        height: Frame height in pixels.
        width: Frame width in pixels.

    Returns:
        Mean normalised distance; NaN if no frame is valid in both.
    """
    tracked = _check_path(tracked, "tracked")
    requested = _check_path(requested, "requested")
    if tracked.shape != requested.shape:
        raise ValueError(f"paths differ in shape: {tracked.shape} vs {requested.shape}")
    scale = np.array([width, height], dtype=np.float64)
    distance = np.linalg.norm((tracked - requested) / scale, axis=-1)  # (F,)
    valid = np.isfinite(distance)
    if not valid.any():
        return float("nan")
    return float(distance[valid].mean())


def direction_success(
    tracked: np.ndarray,
    requested: np.ndarray,
    *,
    tolerance_deg: float = 22.5,
    min_motion: float = 1e-6,
    still_tolerance: float = 0.5,
) -> bool:
    """Whether the tracked net motion goes the requested way.

    Example:
        >>> direction_success(track_centroid(video, color=red), requested)  # doctest: +SKIP

    Net displacement = last valid point - first valid point of each path.

    * Request moves (net length >= ``min_motion``): success iff the tracked
      net displacement is longer than ``still_tolerance`` and within
      ``tolerance_deg`` of the requested direction.
    * Request is still: success iff the tracked net displacement is at most
      ``still_tolerance`` long.

    Args:
        tracked: ``(F, 2)`` pixels (NaN rows allowed).
        requested: ``(F, 2)`` pixels; may have a different F.
        tolerance_deg: Maximum angle between the net displacements.
        min_motion: Requested net length (pixels) below which the request is still.
        still_tolerance: Tracked net length (pixels) at or below which the
            object counts as not having moved.

    Returns:
        The verdict; False when either path has no valid point.
    """
    ends_t = _first_last_valid(_check_path(tracked, "tracked"))
    ends_r = _first_last_valid(_check_path(requested, "requested"))
    if ends_t is None or ends_r is None:
        return False
    moved = ends_t[1] - ends_t[0]
    wanted = ends_r[1] - ends_r[0]
    moved_norm = float(np.hypot(*moved))
    if float(np.hypot(*wanted)) < min_motion:
        return moved_norm <= still_tolerance
    if moved_norm <= still_tolerance or moved_norm < min_motion:
        return False
    return bool(angle_between(moved, wanted) <= tolerance_deg)


def steering(tracked: np.ndarray, source: np.ndarray, requested: np.ndarray) -> dict:
    """How guidance changed an object's net motion, against the unguided source from the same noise.

    Example:
        >>> steering(track_centroid(guided, color=red), track_centroid(source, color=red), requested)  # doctest: +SKIP
        {'toward_px': 6.5, 'across_px': 0.4, 'motion_kept': 0.8}

    Direction success is a yes/no verdict on the guided video alone; this separates what guidance
    *did*: the change of net displacement (last minus first valid point) projected on the
    requested direction (``toward_px``, positive when the object was pushed the requested way),
    its size across that direction (``across_px``), and the guided net length over the source's
    (``motion_kept``: 1 unchanged, below 1 damped, above 1 amplified).

    Args:
        tracked: ``(F, 2)`` guided path, pixels (NaN rows allowed).
        source: ``(F, 2)`` unguided path from the same noise.
        requested: ``(F, 2)`` requested path.

    Returns:
        ``toward_px``, ``across_px`` (NaN when the request is still or a path has no valid
        point) and ``motion_kept`` (NaN when the source did not move or a path is empty).
    """
    nan = {"toward_px": float("nan"), "across_px": float("nan"), "motion_kept": float("nan")}
    ends = [_first_last_valid(_check_path(p, n)) for p, n in
            ((tracked, "tracked"), (source, "source"), (requested, "requested"))]
    if any(e is None for e in ends):
        return nan
    moved, before, wanted = (e[1] - e[0] for e in ends)
    out = dict(nan)
    if np.hypot(*before) > 1e-6:
        out["motion_kept"] = float(np.hypot(*moved) / np.hypot(*before))
    if np.hypot(*wanted) > 1e-6:
        unit = wanted / np.hypot(*wanted)
        change = moved - before
        out["toward_px"] = float(change @ unit)
        out["across_px"] = float(abs(change[0] * unit[1] - change[1] * unit[0]))
    return out


def path_fit(path: np.ndarray) -> dict:
    """Straight-line fit and motion statistics of one path.

    Example:
        >>> path_fit(track_centroid(video, color=red))  # doctest: +SKIP
        {'r2': 0.99, 'speed': 2.0, 'direction_consistency': 0.98, 'angle_deg': 0.3, ...}

    Args:
        path: ``(F, 2)`` pixels; NaN rows are skipped.

    Returns:
        Dict of floats:
        ``r2``: x(t) and y(t) are each fitted linearly in the frame index t;
        R^2 = 1 - SS_res / SS_tot with both sums over both coordinates. A
        still path (SS_tot <= 1e-9 px^2) gives 1.0.
        ``speed``: mean displacement length between consecutive valid frames.
        ``direction_consistency``: mean cosine between consecutive
        displacements (both zero-length counts 1, one zero-length 0); NaN
        with fewer than two displacements.
        ``angle_deg``: atan2(dy, dx) of the net displacement in image
        coordinates (0 = right, 90 = down), NaN if it is zero.
        ``net_dx``, ``net_dy``: the net displacement (last - first valid).
        ``num_valid``: number of valid frames.
        All values but ``num_valid`` are NaN with fewer than two valid frames.
    """
    path = _check_path(path, "path")
    valid = np.all(np.isfinite(path), axis=1)  # (F,)
    num_valid = int(valid.sum())
    nan = float("nan")
    result = {"r2": nan, "speed": nan, "direction_consistency": nan, "angle_deg": nan,
              "net_dx": nan, "net_dy": nan, "num_valid": num_valid}
    if num_valid < 2:
        return result

    t = np.flatnonzero(valid).astype(np.float64)  # (n,)
    points = path[valid]  # (n, 2)
    design = np.stack([np.ones_like(t), t], axis=1)  # (n, 2)
    coef, *_ = np.linalg.lstsq(design, points, rcond=None)  # (2, 2)
    ss_res = float(np.sum((points - design @ coef) ** 2))
    ss_tot = float(np.sum((points - points.mean(axis=0)) ** 2))
    result["r2"] = 1.0 if ss_tot <= 1e-9 else 1.0 - ss_res / ss_tot

    steps = np.diff(path, axis=0)  # (F-1, 2), NaN where either end is invalid
    step_ok = np.all(np.isfinite(steps), axis=1)
    norms = np.linalg.norm(steps, axis=1)
    result["speed"] = float(norms[step_ok].mean()) if step_ok.any() else nan

    cosines = []
    for a, b, ok_a, ok_b in zip(steps[:-1], steps[1:], step_ok[:-1], step_ok[1:]):
        if not (ok_a and ok_b):
            continue
        na, nb = np.hypot(*a), np.hypot(*b)
        if na < 1e-9 and nb < 1e-9:
            cosines.append(1.0)
        elif na < 1e-9 or nb < 1e-9:
            cosines.append(0.0)
        else:
            cosines.append(float(np.dot(a, b) / (na * nb)))
    if cosines:
        result["direction_consistency"] = float(np.mean(cosines))

    net = points[-1] - points[0]
    result["net_dx"], result["net_dy"] = float(net[0]), float(net[1])
    if np.hypot(*net) > 0:
        result["angle_deg"] = float(math.degrees(math.atan2(net[1], net[0])))
    return result


def zoom_scale(tracks: np.ndarray, *, min_distance: float = 3.0, max_points: int = 300) -> float:
    """Scale change of tracked content from the first to the last frame (> 1: it grew, a zoom in).

    Example:
        >>> pts = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
        >>> tracks = np.stack([pts, 1.2 * pts + 5.0], axis=1)    # (3, 2, 2): scaled by 1.2 and moved
        >>> round(zoom_scale(tracks), 6)
        1.2

    The median, over pairs of points tracked in both frames and at least ``min_distance`` px
    apart in the first, of the ratio of their distances in the last frame and the first. A
    translation leaves every ratio at 1; a zoom by ``s`` about any centre multiplies each by ``s``.

    Args:
        tracks: ``(N, F, 2)`` point tracks (NaN where lost).
        min_distance: Pairs closer than this (px) in the first frame are skipped (their ratio is
            dominated by tracking noise).
        max_points: At most this many points are paired (evenly spaced picks), N^2 stays small.

    Returns:
        The median ratio, or NaN with fewer than one usable pair.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    if tracks.ndim != 3 or tracks.shape[-1] != 2:
        raise ValueError(f"tracks must have shape (N, F, 2), got {tracks.shape}")
    ends = tracks[:, [0, -1]]  # (N, 2, 2) first and last position
    ends = ends[np.isfinite(ends).all(axis=(1, 2))]
    if len(ends) > max_points:
        ends = ends[np.linspace(0, len(ends) - 1, max_points).round().astype(int)]
    first = np.linalg.norm(ends[:, None, 0] - ends[None, :, 0], axis=-1)  # (N, N)
    last = np.linalg.norm(ends[:, None, 1] - ends[None, :, 1], axis=-1)  # (N, N)
    pairs = np.triu(first >= min_distance, k=1)
    if not pairs.any():
        return float("nan")
    return float(np.median(last[pairs] / first[pairs]))


# a zoom lands when the measured log scale change goes the requested way by at least this share of
# the requested one (1.3x asked: at least 1.068x measured; 0.77x asked: at most 0.936x)
ZOOM_SHARE = 0.25


def zoom_success(measured: float, requested: float, *, share: float = ZOOM_SHARE) -> bool:
    """Whether a measured scale change (``zoom_scale``) went the requested way far enough.

    Example:
        >>> zoom_success(1.1, 1.3), zoom_success(0.98, 1.3), zoom_success(0.9, 0.77)
        (True, False, True)

    Args:
        measured: Measured scale of the last frame over the first (NaN: not measured, False).
        requested: Requested scale, not 1.
        share: Least share of the requested log scale change (``log measured / log requested``).
    """
    if requested <= 0 or requested == 1.0:
        raise ValueError(f"requested zoom must be positive and not 1, got {requested}")
    if not (math.isfinite(measured) and measured > 0):
        return False
    return bool(math.log(measured) / math.log(requested) >= share)


# ---------------------------------------------------------------------------
# image quality
# ---------------------------------------------------------------------------


def _pair_and_mask(a, b, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 [0, 1] videos (F, H, W, C) and a (F, H, W) bool include-mask."""
    a = _as_video(to_float(np.asarray(a)), "a").astype(np.float64)
    b = _as_video(to_float(np.asarray(b)), "b").astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"videos differ in shape: {a.shape} vs {b.shape}")
    num_frames, height, width, _ = a.shape
    if mask is None:
        include = np.ones((num_frames, height, width), dtype=bool)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape == (height, width):
            include = np.broadcast_to(mask, (num_frames, height, width))
        elif mask.shape == (num_frames, height, width):
            include = mask
        else:
            raise ValueError(f"mask must have shape (H, W) or (F, H, W) = {(num_frames, height, width)}, got {mask.shape}")
    return a, b, include


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio of two videos, in dB (peak = 1 on the [0, 1] scale).

    Example:
        >>> psnr(generated, original, mask=~controlled_region)   # mask (H, W) bool  # doctest: +SKIP

    Args:
        a: ``(F, H, W, C)`` (or one ``(H, W, C)`` frame), uint8 or float [0, 1].
        b: Same shape as ``a``; dtypes may differ.
        mask: Optional ``(H, W)`` or ``(F, H, W)`` bool of pixels to include.

    Returns:
        PSNR over the included pixels and all channels; inf if identical
        there, NaN if the mask selects nothing.
    """
    a, b, include = _pair_and_mask(a, b, mask)
    if not include.any():
        return float("nan")
    mse = float(np.mean((a - b)[include] ** 2))  # (P, C) -> scalar
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(1.0 / mse))


SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. 2004: an 11x11 Gaussian window, sigma 1.5


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two videos (Wang et al. 2004), averaged over colour channels.

    Example:
        >>> frame = np.random.default_rng(0).random((16, 16, 3))
        >>> ssim_map(frame, frame).shape, float(ssim_map(frame, frame).min())
        ((1, 16, 16), 1.0)

    The standard definition: local means, variances and covariance under an 11x11 Gaussian
    window of sigma 1.5 (population statistics), C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with
    L = 1 on the [0, 1] scale, borders reflected (``d c b a | a b c d``). Equal, per channel, to
    scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, full=True)`` map.

    Args:
        a: ``(F, H, W, C)`` (or one ``(H, W, C)`` frame), uint8 or float [0, 1].
        b: Same shape as ``a``; dtypes may differ.

    Returns:
        ``(F, H, W)`` float64 in [-1, 1].
    """
    a, b, _ = _pair_and_mask(a, b, None)
    c1, c2 = 0.01**2, 0.03**2

    def blur(x):  # (H, W, C) float64 -> (H, W, C)
        out = cv2.GaussianBlur(x, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)
        return out.reshape(x.shape)

    maps = np.empty(a.shape[:3])  # (F, H, W)
    for k in range(len(a)):
        x, y = a[k], b[k]  # (H, W, C)
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x * mu_x
        var_y = blur(y * y) - mu_y * mu_y
        cov = blur(x * y) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
        maps[k] = (numerator / denominator).mean(axis=-1)
    return maps


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity of two videos (Wang et al. 2004: Gaussian 11x11, sigma 1.5).

    Example:
        >>> frame = np.random.default_rng(0).random((16, 16, 3))
        >>> ssim(frame, frame)
        1.0

    Without a mask: the mean of ``ssim_map`` over all frames, leaving out a 5-pixel border
    (where the window reaches past the frame), which is scikit-image's
    ``structural_similarity`` (with the settings of ``ssim_map``) averaged over frames. With a
    mask: the mean of the map over the mask's pixels (masked SSIM), border included; windows
    near the mask's edge still see the pixels outside it, so dilate an excluded region by 5 px
    to keep it from leaking in.

    Args:
        a: ``(F, H, W, C)`` (or one ``(H, W, C)`` frame), uint8 or float [0, 1].
        b: Same shape as ``a``; dtypes may differ.
        mask: Optional ``(H, W)`` or ``(F, H, W)`` bool of pixels to include.

    Returns:
        Mean SSIM in [-1, 1]; 1.0 for identical inputs; NaN if the mask selects nothing (or,
        without a mask, a frame side is under 11 pixels).
    """
    a, b, include = _pair_and_mask(a, b, mask)
    if mask is None:
        pad = (SSIM_WINDOW - 1) // 2
        include = np.zeros_like(include)
        include[:, pad:include.shape[1] - pad, pad:include.shape[2] - pad] = True
    if not include.any():
        return float("nan")
    return float(ssim_map(a, b)[include].mean())


# ---------------------------------------------------------------------------
# glitch frames
# ---------------------------------------------------------------------------

# A glitch: some frame transition changes a GLITCH_WINDOW-px patch outside the regions by more than
# GLITCH_FACTOR x the source's largest such change plus GLITCH_FLOOR (mean absolute RGB change in
# [0, 1]). Chosen on the synthetic cases of tests/test_metrics.py: over a textured ground that
# flickers by up to 0.03 per frame, a one-frame 4x4 blob of colour change 0.3 and a one-frame tint
# of the whole ground by 0.15 are flagged; a ground flickering twice as much as the source's, or a
# smoothly moving object inside the region, is not. On the shipped model a guided video with a
# one-frame grey tint and blob (benchmarks/zoom.json, seed 170, object zoom out: 0.171 against the
# source's 0.033) is flagged; the other guided object rows of that suite (at most 0.042) are not.
GLITCH_WINDOW = 4
GLITCH_FACTOR = 3.0
GLITCH_FLOOR = 0.05


def frame_change(video: np.ndarray, mask: np.ndarray | None = None, *, window: int = GLITCH_WINDOW) -> np.ndarray:
    """Per frame transition, the largest local change: the max over ``window`` x ``window`` patches
    of the mean absolute frame-to-frame change (mean over RGB) of the pixels in ``mask``.

    Example:
        >>> video = np.zeros((3, 16, 16, 3))
        >>> video[1, 4:8, 4:8] = 0.5                  # a 4x4 blob in frame 1 only
        >>> frame_change(video).round(2).tolist()     # in and out again
        [0.5, 0.5]

    Args:
        video: ``(F, H, W, 3)`` uint8 or float [0, 1].
        mask: ``(H, W)`` or ``(F, H, W)`` bool, the pixels that count (a transition uses those in
            both its frames); None: all. A patch counts when at least half its pixels do.
        window: Patch side in pixels.

    Returns:
        ``(F - 1,)`` float64, NaN for a transition with no patch in the mask.
    """
    v = _as_video(to_float(np.asarray(video))).astype(np.float64)  # (F, H, W, C)
    num_frames, height, width = v.shape[:3]
    if mask is None:
        include = np.ones((num_frames, height, width), dtype=bool)
    else:
        include = np.broadcast_to(_check_mask_frames(mask, num_frames, height, width), (num_frames, height, width))
    diff = np.abs(v[1:] - v[:-1]).mean(axis=-1)  # (F-1, H, W)
    both = (include[1:] & include[:-1]).astype(np.float64)  # (F-1, H, W)
    out = np.full(num_frames - 1, np.nan)
    for k in range(num_frames - 1):
        total = cv2.blur(diff[k] * both[k], (window, window), borderType=cv2.BORDER_CONSTANT)  # (H, W)
        share = cv2.blur(both[k], (window, window), borderType=cv2.BORDER_CONSTANT)  # (H, W)
        ok = share >= 0.5 - 1e-9
        if ok.any():
            out[k] = float((total[ok] / share[ok]).max())
    return out


def glitch(video: np.ndarray, source: np.ndarray, mask: np.ndarray | None = None, *,
           factor: float = GLITCH_FACTOR, floor: float = GLITCH_FLOOR) -> bool:
    """Whether ``video`` has a glitch frame outside the regions that ``source`` does not.

    Example:
        >>> source = np.zeros((4, 16, 16, 3))
        >>> video = source.copy(); video[2, 4:8, 4:8] = (1.0, 0.0, 1.0)   # a one-frame magenta blob
        >>> glitch(video, source), glitch(source, source)
        (True, False)

    True when some transition's ``frame_change`` exceeds ``factor`` x the source's largest plus
    ``floor``: a jump far above how much the source video itself changes there.

    Args:
        video: ``(F, H, W, 3)`` guided video.
        source: ``(F, H, W, 3)`` unguided video of the same noise.
        mask: ``(H, W)`` or ``(F, H, W)`` bool: where to look (outside the regions, dilated).

    Raises:
        ValueError: no patch of any transition lies in the mask.
    """
    change, before = frame_change(video, mask), frame_change(source, mask)
    if not np.isfinite(change).any():
        raise ValueError("glitch: no patch of the mask to compare")
    return bool(np.nanmax(change) > factor * np.nanmax(before) + floor)


def object_pieces(video: np.ndarray, color, *, threshold: float | None = None, min_area: int = 4) -> np.ndarray:
    """Per frame, how many separate pieces (8-connected components of at least ``min_area`` pixels, as
    ``track_centroid`` counts them) the object of ``color`` is in.

    Example:
        >>> video = np.zeros((2, 16, 16, 3)); video[:, 2:6, 2:6] = (1.0, 0.0, 0.0)
        >>> video[1, 10:14, 10:14] = (1.0, 0.0, 0.0)          # a copy appears in frame 1
        >>> object_pieces(video, (1.0, 0.0, 0.0)).tolist()
        [1, 2]

    Returns:
        ``(F,)`` int.
    """
    fg = color_mask(video, color, threshold)  # (F, H, W)
    counts = []
    for k in range(fg.shape[0]):
        _, _, stats, _ = cv2.connectedComponentsWithStats(fg[k].astype(np.uint8), connectivity=8)
        counts.append(int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum()))  # label 0 is the background
    return np.asarray(counts)


def split(video: np.ndarray, source: np.ndarray, color, **kwargs) -> bool:
    """Whether guidance broke the object up: some frame of ``video`` shows it in more pieces than any frame of
    ``source`` (the unguided video of the same noise). A drag that paints a copy at the requested place while the
    original stays moves the colour centroid as a real motion would; this tells the two apart.

    Example:
        >>> source = np.zeros((2, 16, 16, 3)); source[:, 2:6, 2:6] = (1.0, 0.0, 0.0)
        >>> moved = np.zeros_like(source); moved[0, 2:6, 2:6] = moved[1, 2:6, 5:9] = (1.0, 0.0, 0.0)
        >>> copied = source.copy(); copied[1, 2:6, 10:14] = (1.0, 0.0, 0.0)
        >>> split(moved, source, (1.0, 0.0, 0.0)), split(copied, source, (1.0, 0.0, 0.0))
        (False, True)
    """
    return bool(object_pieces(video, color, **kwargs).max() > object_pieces(source, color, **kwargs).max())


def object_kept(video: np.ndarray, color, *, max_step: float, area_band: tuple[float, float] = (0.5, 2.0),
                threshold: float | None = None) -> dict:
    """Whether an animation keeps frame 0's object (an image-to-video model's bar): the object of ``color``
    is in every frame, its centroid never moves more than ``max_step`` px between consecutive frames (an
    object that jumps away from where the image put it is another object) and its area in every frame is
    within ``area_band`` times frame 0's (its size and shape kept, not grown or dissolved).

    Example:
        >>> video = np.zeros((3, 16, 16, 3)); video[:, 2:6, 2:6] = (1.0, 0.0, 0.0)      # (F, H, W, 3)
        >>> object_kept(video, (1.0, 0.0, 0.0), max_step=3.0)["kept"]
        True
        >>> video[1:] = 0; video[1:, 8:14, 8:14] = (1.0, 0.0, 0.0)          # frame 1 starts a bigger one elsewhere
        >>> r = object_kept(video, (1.0, 0.0, 0.0), max_step=3.0)
        >>> r["kept"], round(r["max_step_px"], 1), r["area_ratio_max"]
        (False, 9.9, 2.25)

    Returns:
        ``{"kept", "present", "max_step_px", "area_ratio_min", "area_ratio_max"}`` (NaN figures when some
        frame lacks the object).
    """
    fg = color_mask(video, color, threshold)  # (F, H, W)
    area = fg.sum(axis=(1, 2)).astype(float)  # (F,)
    present = bool((area > 0).all())
    if not present:
        return {"kept": False, "present": False, "max_step_px": float("nan"), "area_ratio_min": float("nan"),
                "area_ratio_max": float("nan")}
    ys, xs = np.mgrid[: fg.shape[1], : fg.shape[2]]  # (H, W)
    centre = np.stack([(fg * xs).sum(axis=(1, 2)) / area, (fg * ys).sum(axis=(1, 2)) / area], -1)  # (F, 2)
    step = float(np.linalg.norm(np.diff(centre, axis=0), axis=-1).max()) if len(area) > 1 else 0.0
    ratio = area / area[0]  # (F,)
    kept = step <= max_step and area_band[0] <= ratio.min() and ratio.max() <= area_band[1]
    return {"kept": bool(kept), "present": True, "max_step_px": step, "area_ratio_min": float(ratio.min()),
            "area_ratio_max": float(ratio.max())}


def _check_mask_frames(mask, num_frames: int, height: int, width: int) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape not in ((height, width), (num_frames, height, width)):
        raise ValueError(f"mask must have shape (H, W) or (F, H, W) = {(num_frames, height, width)}, got {mask.shape}")
    return mask

"""Trajectory files: the user-facing JSON format that says what should move where.

A trajectory file lists *regions* of the frame and, for each, the motion it should
follow over the video. One file serves any resolution: every coordinate is a
fraction of the frame, x to the right and y down, ``(0, 0)`` the top-left corner
and ``(1, 1)`` the bottom-right one.

Example::

    {
      "version": 1,
      "frames": 16,
      "regions": [
        {"mask": {"box": [0.30, 0.30, 0.60, 0.60]},
         "points": [[0.45, 0.45], [0.48, 0.45], [0.51, 0.46]]},
        {"mask": {"circle": [0.75, 0.25, 0.10]},
         "direction": "left", "speed": 0.02},
        {"mask": "all",
         "segments": [{"frames": [0, 7], "direction": [1, 0]},
                      {"frames": [8, 15], "direction": [-1, 0]}]}
      ]
    }

Top level (an object; no other keys are allowed, at any level):

* ``version`` (required): must be ``1``.
* ``frames`` (optional): number of video frames, an integer in
  ``[2, MAX_FRAMES]``. When absent the loader's ``default_frames`` is used.
* ``regions`` (required): a non-empty array (at most ``MAX_REGIONS``) of regions.

A region is an object with a ``mask`` and one kind of motion (a translation, a ``zoom``, or both).

``mask`` is one of

* ``{"box": [x0, y0, x1, y1]}`` with ``x0 < x1`` and ``y0 < y1``. A pixel is in
  the box when its centre satisfies ``x0 <= x < x1`` and ``y0 <= y < y1``.
* ``{"circle": [cx, cy, r]}`` with ``0 < r <= 1``. The radius is a fraction of the
  *shorter* side of the frame, so at ``H x W`` pixels the circle has radius
  ``r * min(H, W)`` pixels and stays round on non-square frames. Pixels whose
  centre is within (``<=``) that radius of ``(cx * W, cy * H)`` are in.
* ``{"polygon": [[x, y], ...]}`` with 3 to ``MAX_POLYGON_POINTS`` vertices and a
  non-zero area; pixel centres are tested with the even-odd rule.
* ``{"image": "mask.png"}``: a PNG, white = region. It is converted to grey levels
  in ``[0, 1]``, resized bilinearly to the target resolution and thresholded at
  ``>= 0.5``. A relative path is resolved against the trajectory file's folder
  (``base_dir`` for :func:`parse_trajectory`, or the current directory if that is
  ``None``). The file must exist, be a readable PNG and have a white pixel.
* ``"all"``: the whole frame, i.e. a camera pan.

Motion is exactly one of

* ``"points": [[x, y], ...]``: the requested position at each frame (2 to
  ``MAX_POINTS`` points). A list whose length differs from ``frames`` is resampled
  linearly: point ``i`` of ``N`` sits at time ``i / (N - 1)`` and frame ``f`` of
  ``F`` at time ``f / (F - 1)`` (``np.interp`` per coordinate).
* ``"direction"``: a name (``left``, ``right``, ``up``, ``down``, ``up-left``,
  ``up-right``, ``down-left``, ``down-right``) or a non-zero vector ``[dx, dy]``
  (normalised), with an optional ``"speed"``: the distance moved per frame as a
  fraction of the frame, ``0 < speed <= 1``, default ``0.05``. The displacement is
  the same for every pair of consecutive frames.
* ``"segments"``: a non-empty array of ``{"frames": [a, b], "direction": ...,
  "speed": ...}`` (``speed`` optional as above) with ``0 <= a <= b < frames``.
  Ranges are inclusive and may not overlap. The displacement from frame ``f`` to
  ``f + 1`` is taken from the segment containing ``f``; transitions no segment
  covers have zero motion.

``"zoom"`` (optional, alone or with one of the motions above): a number ``z`` in
``[MIN_ZOOM, MAX_ZOOM]``, the scale of the region's content at the last frame over the first.
The content is scaled about the region's position on its path (its centre, moving with it
when a motion is given), linearly per frame: frame ``f`` of ``F`` shows frame 0's content
scaled by ``1 + (z - 1) * f / (F - 1)``. ``z > 1`` zooms in (the content grows), ``z < 1``
zooms out; with ``"mask": "all"`` it is a camera zoom about ``(0.5, 0.5)`` (or the path). A
region with only ``zoom`` stays at its centroid. Only drag targets express a zoom: a
region-mean (``curves``) target cannot (a zoom's mean displacement over the region is zero).

A *point region* (for point drag, paper Eq. 4 and 9) has no ``mask``; it holds points, each with
its own path, and a ``radius``:

* ``{"points": [[x, y], ...], "radius": r}``: one point, its requested position per frame;
* ``{"tracks": [[[x, y], ...], ...], "radius": r}``: several points (1 to ``MAX_TRACKS``), each
  with its own positions.

Coordinates are frame fractions in ``[0, 1]`` as above; ``r`` is a fraction of the shorter side of
the frame (as for ``circle``), ``0 < r <= 1``, the neighbourhood whose features the point loss
compares. A path has 1 to ``MAX_POINTS`` positions: one position pins the point (it stays still);
a count other than ``frames`` is resampled with a Catmull-Rom curve (:func:`resample_positions`,
smooth, exact at the given positions, which may overshoot ``[0, 1]`` a little). The region's
``tracks`` are ``(N, F, 2)``, its ``path`` their mean, and its mask the disks of radius ``r``
around the points' frame-0 positions, each covering at least the pixel that holds its point
(``{"disks": [[x, y, r], ...]}``, not a kind users write).

For ``direction`` and ``segments`` the region's path starts at the mask's
centroid (the analytic centroid of a box, circle centre, polygon area centroid,
``(0.5, 0.5)`` for ``"all"``, and for an image the centroid of its white pixels at
the image's own resolution) and accumulates the displacements; the path may leave
the frame.

Every problem raises :class:`TrajectoryError` (a ``ValueError``) with a one-line
message that starts with the path of the offending field, for example
``regions[1].mask.circle: radius must be > 0`` or
``regions[0]: unknown key 'colour'``. Problems with the document as a whole start
with the source name (the file path for :func:`load_trajectory`), e.g.
``clip.json: not valid JSON (line 3, column 5)``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .validate import Fields, did_you_mean, is_bool, one_line, short, type_name

__all__ = [
    "DEFAULT_SPEED",
    "DIRECTIONS",
    "MAX_FRAMES",
    "MAX_POINTS",
    "MAX_POLYGON_POINTS",
    "MAX_REGIONS",
    "MAX_TRACKS",
    "MAX_ZOOM",
    "MIN_ZOOM",
    "Region",
    "Trajectory",
    "TrajectoryError",
    "load_trajectory",
    "parse_trajectory",
    "resample_positions",
]

VERSION = 1
DEFAULT_SPEED = 0.05
MAX_FRAMES = 4096
MAX_REGIONS = 256
MAX_POINTS = 4096
MAX_POLYGON_POINTS = 1024
MAX_TRACKS = 1024  # points of one point region
MIN_ZOOM = 0.25  # scale of the last frame over the first; beyond 4x the drag proxy is mostly blur or border
MAX_ZOOM = 4.0
_MIN_POLYGON_AREA = 1e-9  # in squared frame fractions; a 1000x1000 frame pixel is 1e-6

_D = math.sqrt(0.5)
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-left": (-_D, -_D),
    "up-right": (_D, -_D),
    "down-left": (-_D, _D),
    "down-right": (_D, _D),
}

_MASK_KINDS = ("box", "circle", "polygon", "image")
_MOTION_KINDS = ("points", "direction", "segments")


class TrajectoryError(ValueError):
    """An invalid trajectory; the message is one line starting with the field path.

    Example::

        try:
            traj = load_trajectory("clip.json")
        except TrajectoryError as err:
            print(err)  # e.g. "regions[0].mask.box: x0 must be < x1"
    """


# --------------------------------------------------------------------------- helpers

_check = Fields(TrajectoryError)  # the shared field checks (moft.io.validate), raising TrajectoryError
_fail = _check.fail


def _coord(value: object, path: str) -> float:
    """A frame fraction in ``[0, 1]``."""
    return _check.number(value, path, 0.0, 1.0)


def _point(value: object, path: str) -> list[float]:
    items = _check.array(value, path, 2, 2, "numbers [x, y]")
    return [_coord(items[0], f"{path}[0]"), _coord(items[1], f"{path}[1]")]


# --------------------------------------------------------------------------- masks


def _parse_mask(value: object, path: str, base_dir: Path | None) -> tuple[dict | str, np.ndarray | None]:
    """Validate a mask spec; returns the canonical spec and, for images, the grey levels."""
    if isinstance(value, str):
        if value == "all":
            return "all", None
        raise _fail(path, f'must be "all" or an object with one of {_quoted(_MASK_KINDS)}, got {short(value)}')
    if not isinstance(value, Mapping):
        raise _fail(path, f'must be "all" or an object, got {type_name(value)}')
    _check.object(value, path, allowed=_MASK_KINDS)
    if len(value) != 1:
        raise _fail(path, f"must have exactly one of {_quoted(_MASK_KINDS)}, got {len(value)}")
    (kind, spec), = value.items()
    sub = f"{path}.{kind}"
    if kind == "box":
        items = _check.array(spec, sub, 4, 4, "numbers [x0, y0, x1, y1]")
        x0, y0, x1, y1 = (_coord(v, f"{sub}[{i}]") for i, v in enumerate(items))
        if not x0 < x1:
            raise _fail(sub, f"x0 must be < x1, got {short(x0)} and {short(x1)}")
        if not y0 < y1:
            raise _fail(sub, f"y0 must be < y1, got {short(y0)} and {short(y1)}")
        return {"box": [x0, y0, x1, y1]}, None
    if kind == "circle":
        items = _check.array(spec, sub, 3, 3, "numbers [cx, cy, r]")
        cx = _coord(items[0], f"{sub}[0]")
        cy = _coord(items[1], f"{sub}[1]")
        r = _check.number(items[2], f"{sub}[2]")
        if not r > 0.0:
            raise _fail(sub, f"radius must be > 0, got {short(r)}")
        if r > 1.0:
            raise _fail(sub, f"radius must be <= 1, got {short(r)}")
        return {"circle": [cx, cy, r]}, None
    if kind == "polygon":
        items = _check.array(spec, sub, 3, MAX_POLYGON_POINTS, "points")
        points = [_point(v, f"{sub}[{i}]") for i, v in enumerate(items)]
        if abs(_polygon_area_centroid(np.asarray(points))[0]) < _MIN_POLYGON_AREA:
            raise _fail(sub, "polygon has zero area (collinear or self-cancelling points)")
        return {"polygon": points}, None
    # image
    if not isinstance(spec, str):
        raise _fail(sub, f"must be a path string, got {type_name(spec)}")
    if not spec:
        raise _fail(sub, "must be a non-empty path")
    resolved = _resolve(spec, base_dir, sub)
    grey = _read_png(resolved, sub)
    if not (grey >= 0.5).any():
        raise _fail(sub, f"image {short(spec)} has no white pixel (>= 0.5)")
    return {"image": str(resolved)}, grey


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _resolve(spec: str, base_dir: Path | None, path: str) -> Path:
    try:
        target = Path(spec)
        if not target.is_absolute():
            target = Path(base_dir if base_dir is not None else Path.cwd()) / target
        return Path(os.path.abspath(target))
    except Exception as exc:
        raise _fail(path, f"bad path {short(spec)} ({short(type(exc).__name__)})") from None


def _read_png(path: Path, field_path: str) -> np.ndarray:
    """Read a PNG as (h, w) float32 grey levels in [0, 1]."""
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise _fail(field_path, f"{short(str(path), 80)} is not a PNG (format {short(img.format)})")
            img.load()
            mode = img.mode
            if mode.startswith("I"):  # 16/32-bit integer grey
                grey = np.asarray(img, dtype=np.float64) / 65535.0
            elif mode == "F":
                grey = np.asarray(img, dtype=np.float64)
            else:
                grey = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    except TrajectoryError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise _fail(field_path, f"cannot read {short(str(path), 80)} ({reason})") from None
    except Exception as exc:
        raise _fail(field_path, f"cannot read {short(str(path), 80)} ({type(exc).__name__}: {exc})") from None
    grey = np.nan_to_num(grey, nan=0.0, posinf=1.0, neginf=0.0)
    if grey.ndim != 2 or grey.size == 0:
        raise _fail(field_path, f"{short(str(path), 80)} is not a single-channel-convertible image")
    return np.clip(grey, 0.0, 1.0).astype(np.float32)


def _polygon_area_centroid(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Signed area and area centroid of a polygon. points: (N, 2)."""
    x, y = points[:, 0], points[:, 1]  # (N,)
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y  # (N,)
    area = 0.5 * float(cross.sum())
    if area == 0.0:
        return 0.0, points.mean(axis=0)
    cx = float(((x + xn) * cross).sum()) / (6.0 * area)
    cy = float(((y + yn) * cross).sum()) / (6.0 * area)
    return area, np.clip(np.array([cx, cy]), 0.0, 1.0)


def _mask_centroid(mask: dict | str, grey: np.ndarray | None) -> np.ndarray:
    """Centroid (x, y) of a validated mask, in frame fractions. -> (2,)"""
    if mask == "all":
        return np.array([0.5, 0.5])
    kind, spec = next(iter(mask.items()))
    if kind == "box":
        x0, y0, x1, y1 = spec
        return np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    if kind == "circle":
        return np.array([spec[0], spec[1]], dtype=np.float64)
    if kind == "polygon":
        return _polygon_area_centroid(np.asarray(spec, dtype=np.float64))[1]
    assert grey is not None
    h, w = grey.shape
    rows, cols = np.nonzero(grey >= 0.5)
    return np.array([(cols.mean() + 0.5) / w, (rows.mean() + 0.5) / h])


def _rasterize_mask(mask: dict | str, grey: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """(H, W) bool raster of a validated mask; pixel centres at (i + 0.5) / size."""
    if mask == "all":
        return np.ones((height, width), dtype=bool)
    ys = (np.arange(height) + 0.5) / height  # (H,)
    xs = (np.arange(width) + 0.5) / width  # (W,)
    kind, spec = next(iter(mask.items()))
    if kind == "box":
        x0, y0, x1, y1 = spec
        in_x = (xs >= x0) & (xs < x1)  # (W,)
        in_y = (ys >= y0) & (ys < y1)  # (H,)
        return in_y[:, None] & in_x[None, :]
    if kind == "circle":
        cx, cy, r = spec
        radius = r * min(height, width)  # pixels
        dx = (np.arange(width) + 0.5) - cx * width  # (W,) pixels
        dy = (np.arange(height) + 0.5) - cy * height  # (H,) pixels
        return dy[:, None] ** 2 + dx[None, :] ** 2 <= radius**2
    if kind == "disks":  # a point region's frame-0 points: the union of circles, each at least its pixel
        raster = np.any([_rasterize_mask({"circle": disk}, None, height, width) for disk in spec], axis=0)
        for x, y, _ in spec:
            raster[min(int(y * height), height - 1), min(int(x * width), width - 1)] = True
        return raster
    if kind == "polygon":
        px = xs[None, :]  # (1, W)
        py = ys[:, None]  # (H, 1)
        inside = np.zeros((height, width), dtype=bool)
        pts = np.asarray(spec, dtype=np.float64)  # (N, 2)
        for (xa, ya), (xb, yb) in zip(pts, np.roll(pts, -1, axis=0)):
            if ya == yb:
                continue  # horizontal edges never cross a horizontal ray
            crosses = (ya > py) != (yb > py)  # (H, 1)
            x_hit = xa + (py - ya) * (xb - xa) / (yb - ya)  # (H, 1)
            inside ^= crosses & (px < x_hit)
        return inside
    assert grey is not None
    if grey.shape != (height, width):
        resized = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32)).resize(
            (width, height), Image.Resampling.BILINEAR
        )
        grey = np.asarray(resized, dtype=np.float32)
    return grey >= 0.5


# --------------------------------------------------------------------------- motion


def _parse_direction(value: object, path: str) -> tuple[str | list[float], np.ndarray]:
    """A direction name or non-zero vector; returns (canonical spec, unit vector (2,))."""
    if isinstance(value, str):
        if value not in DIRECTIONS:
            raise _fail(path, f"unknown direction {short(value)} (expected one of {', '.join(DIRECTIONS)})"
                              f"{did_you_mean(value, DIRECTIONS)}")
        return value, np.array(DIRECTIONS[value])
    if not isinstance(value, (list, tuple)):
        raise _fail(path, f"must be a direction name or an array [dx, dy], got {type_name(value)}")
    items = _check.array(value, path, 2, 2, "numbers [dx, dy]")
    vec = np.array([_check.number(items[0], f"{path}[0]"), _check.number(items[1], f"{path}[1]")])
    scale = float(np.abs(vec).max())
    if scale == 0.0:
        raise _fail(path, "direction vector must be non-zero")
    vec = vec / scale  # avoid overflow/underflow in the norm
    return [float(v) for v in items], vec / float(np.hypot(vec[0], vec[1]))


def _parse_speed(container: Mapping, path: str) -> float:
    if "speed" not in container:
        return DEFAULT_SPEED
    return _check.number(container["speed"], f"{path}.speed", 0.0, 1.0, lo_open=True)


def _parse_motion(region: Mapping, path: str, frames: int, start: np.ndarray) -> tuple[dict, np.ndarray]:
    """Validate a region's motion; returns (canonical motion spec, path (F, 2))."""
    given = [k for k in _MOTION_KINDS if k in region]
    zoom = _parse_zoom(region, path)
    if not given and zoom is not None:
        if "speed" in region:
            raise _fail(path, "'speed' is only allowed with 'direction' (inside each segment for 'segments')")
        return {"zoom": zoom}, np.repeat(start[None, :], frames, axis=0)  # (F, 2): scaled in place
    motion, xy = _parse_translation(region, path, frames, start, given)
    if zoom is not None:
        motion["zoom"] = zoom
    return motion, xy


def _parse_zoom(region: Mapping, path: str) -> float | None:
    if "zoom" not in region:
        return None
    zoom = _check.number(region["zoom"], f"{path}.zoom")
    if not MIN_ZOOM <= zoom <= MAX_ZOOM:
        raise _fail(f"{path}.zoom", f"must be in [{MIN_ZOOM:g}, {MAX_ZOOM:g}] (scale of the last frame over "
                                    f"the first; > 1 zooms in, < 1 out), got {short(zoom)}")
    return zoom


def _parse_translation(region: Mapping, path: str, frames: int, start: np.ndarray,
                       given: list[str]) -> tuple[dict, np.ndarray]:
    """The region's path from ``points``, ``direction`` or ``segments``."""
    if not given:
        raise _fail(path, f"missing motion: give one of {_quoted(_MOTION_KINDS + ('zoom',))}")
    if len(given) > 1:
        raise _fail(path, f"give exactly one of {_quoted(_MOTION_KINDS)}, got {_quoted(tuple(given))}")
    kind = given[0]
    if "speed" in region and kind != "direction":
        raise _fail(path, "'speed' is only allowed with 'direction' (inside each segment for 'segments')")

    if kind == "points":
        sub = f"{path}.points"
        items = _check.array(region["points"], sub, 2, MAX_POINTS, "points")
        points = [_point(v, f"{sub}[{i}]") for i, v in enumerate(items)]
        given_pts = np.asarray(points, dtype=np.float64)  # (N, 2)
        t_points = np.linspace(0.0, 1.0, len(points))  # (N,)
        t_frames = np.linspace(0.0, 1.0, frames)  # (F,)
        xy = np.stack([np.interp(t_frames, t_points, given_pts[:, k]) for k in (0, 1)], axis=1)  # (F, 2)
        return {"points": points}, xy

    disp = np.zeros((frames - 1, 2))  # (F - 1, 2)
    if kind == "direction":
        spec, unit = _parse_direction(region["direction"], f"{path}.direction")
        speed = _parse_speed(region, path)
        disp[:] = unit * speed
        motion: dict = {"direction": spec, "speed": speed}
    else:
        sub = f"{path}.segments"
        items = _check.array(region["segments"], sub, 1, frames, "segments")
        segments = []
        taken: list[tuple[int, int, int]] = []  # (a, b, index)
        for i, seg in enumerate(items):
            seg_path = f"{sub}[{i}]"
            _check.object(seg, seg_path, allowed=("speed",), required=("frames", "direction"))
            fr_path = f"{seg_path}.frames"
            rng = _check.array(seg["frames"], fr_path, 2, 2, "frame numbers [a, b]")
            a, b = (_segment_frame(v, fr_path, frames) for v in rng)
            if a > b:
                raise _fail(fr_path, f"start {a} is after end {b}")
            for a2, b2, j in taken:
                if a <= b2 and a2 <= b:
                    raise _fail(fr_path, f"frames {a}-{b} overlap segments[{j}] (frames {a2}-{b2})")
            taken.append((a, b, i))
            spec, unit = _parse_direction(seg["direction"], f"{seg_path}.direction")
            speed = _parse_speed(seg, seg_path)
            disp[a : min(b, frames - 2) + 1] = unit * speed
            segments.append({"frames": [a, b], "direction": spec, "speed": speed})
        motion = {"segments": segments}
    xy = np.concatenate([start[None, :], start[None, :] + np.cumsum(disp, axis=0)], axis=0)  # (F, 2)
    return motion, xy


def _segment_frame(value: object, path: str, frames: int) -> int:
    if is_bool(value) or not isinstance(value, numbers.Integral):
        raise _fail(path, f"frame numbers must be integers, got {type_name(value)}")
    number = int(value)
    if number < 0:
        raise _fail(path, f"frame {short(number)} is negative")
    if number >= frames:
        raise _fail(path, f"frame {short(number)} is past the end ({frames} frames)")
    return number


def resample_positions(positions: np.ndarray, frames: int) -> np.ndarray:
    """Resample a point's ``K`` positions to ``frames`` positions along a Catmull-Rom curve.

    Example:
        >>> resample_positions(np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 0.0]]), 5).tolist()
        [[0.0, 0.0], [1.0, 0.625], [2.0, 1.0], [3.0, 0.625], [4.0, 0.0]]

    Position ``k`` of ``K`` sits at time ``k / (K - 1)`` and frame ``f`` of ``F`` at ``f / (F - 1)``
    (the positions spread evenly over the frames). Between positions the uniform Catmull-Rom
    spline runs through them (C1-smooth; the ends extended linearly, ``p_-1 = 2 p_0 - p_1``); each
    output is an affine combination of the positions, so collinear positions stay on their line.
    ``K == F`` returns the positions unchanged, ``K == 1`` a still point, ``K == 2`` a straight line.

    Args:
        positions: ``(K, 2)`` positions, ``K >= 1``.
        frames: number of output positions ``F >= 1``.

    Returns:
        ``(F, 2)`` float64.
    """
    p = np.asarray(positions, dtype=np.float64)  # (K, 2)
    k = len(p)
    if k == frames:
        return p.copy()
    if k == 1:
        return np.repeat(p, frames, axis=0)
    padded = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])  # (K + 2, 2)
    u = np.linspace(0.0, k - 1.0, frames) if frames > 1 else np.zeros(1)  # (F,) in position units
    seg = np.minimum(np.floor(u).astype(int), k - 2)  # (F,) segment between positions seg, seg + 1
    s = (u - seg)[:, None]  # (F, 1) in [0, 1]
    p0, p1, p2, p3 = padded[seg], padded[seg + 1], padded[seg + 2], padded[seg + 3]  # (F, 2) each
    return 0.5 * (2 * p1 + (p2 - p0) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                  + (3 * p1 - p0 - 3 * p2 + p3) * s**3)


def _parse_point_region(region: Mapping, path: str, index: int, frames: int) -> Region:
    """A region without a mask: ``points`` (one point's path) or ``tracks`` (several) and ``radius``."""
    _check.object(region, path, allowed=("points", "tracks"), required=("radius",))
    given = [k for k in ("points", "tracks") if k in region]
    if len(given) != 1:
        raise _fail(path, f"a point region needs exactly one of 'points', 'tracks', got {len(given)}")
    radius = _check.number(region["radius"], f"{path}.radius")
    if not 0.0 < radius <= 1.0:
        raise _fail(f"{path}.radius", f"must be in (0, 1] (a fraction of the shorter side), got {short(radius)}")
    sub = f"{path}.{given[0]}"
    if given[0] == "points":
        raw = [region["points"]]
        subs = [sub]
    else:
        raw = _check.array(region["tracks"], sub, 1, MAX_TRACKS, "tracks")
        subs = [f"{sub}[{i}]" for i in range(len(raw))]
    paths = []
    for items, track_path in zip(raw, subs):
        items = _check.array(items, track_path, 1, MAX_POINTS, "points")
        paths.append([_point(v, f"{track_path}[{i}]") for i, v in enumerate(items)])
    tracks = np.stack([resample_positions(np.asarray(pts), frames) for pts in paths])  # (N, F, 2)
    mean = tracks.mean(axis=0)  # (F, 2)
    motion = {"points": paths[0]} if given[0] == "points" else {"tracks": paths}
    return Region(
        index=index,
        mask={"disks": [[pts[0][0], pts[0][1], radius] for pts in paths]},
        path=_readonly(mean),
        displacements=_readonly(np.diff(mean, axis=0)),
        base_dir=None,
        motion={**motion, "radius": radius},
        tracks=_readonly(tracks),
    )


# --------------------------------------------------------------------------- data classes


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Region:
    """One moving region of a trajectory.

    Example::

        traj = load_trajectory("examples/object_left.json")
        region = traj.regions[0]
        mask = region.rasterize(32, 32)      # (32, 32) bool
        step = region.displacements[0]       # (2,) fractions (dx, dy), frame 0 -> 1

    Attributes:
        index: Position of the region in the file's ``regions`` array.
        mask: The validated mask spec: ``"all"`` or a one-key dict such as
            ``{"box": [x0, y0, x1, y1]}``; numbers are floats and an image path is
            absolute.
        path: (F, 2) float64 requested position (x, y) per frame, in frame
            fractions. For ``points`` the resampled points; otherwise it starts at
            the mask's centroid and accumulates ``displacements``.
        displacements: (F - 1, 2) float64, ``path[f + 1] - path[f]``.
        base_dir: For image masks the folder holding the image, else ``None``.
        motion: The validated motion spec, one of ``{"points": [[x, y], ...]}``,
            ``{"direction": name_or_vector, "speed": s}`` or
            ``{"segments": [{"frames": [a, b], "direction": ..., "speed": s}, ...]}``
            (default speeds filled in), plus ``"zoom": z`` when given (alone: ``{"zoom": z}``).
            A point region's is ``{"points": [[x, y], ...], "radius": r}`` or
            ``{"tracks": [[[x, y], ...], ...], "radius": r}`` as written.
        tracks: Point regions only (else ``None``): (N, F, 2) float64 requested position of
            each point per frame, in frame fractions (resampled by :func:`resample_positions`).
            Their ``mask`` is ``{"disks": [[x, y, r], ...]}`` (the frame-0 points) and their
            ``path`` the mean of ``tracks`` over points.
    """

    index: int
    mask: dict | str
    path: np.ndarray  # (F, 2)
    displacements: np.ndarray  # (F - 1, 2)
    base_dir: Path | None
    motion: dict
    _grey: np.ndarray | None = field(default=None, repr=False, compare=False)  # (h, w) image mask
    tracks: np.ndarray | None = None  # (N, F, 2) point regions only

    @property
    def radius(self) -> float | None:
        """A point region's radius (fraction of the shorter side), else ``None``."""
        return float(self.motion["radius"]) if self.tracks is not None else None

    @property
    def zoom(self) -> float:
        """Requested scale of the last frame's content over the first (1.0: no zoom)."""
        return float(self.motion.get("zoom", 1.0))

    @property
    def scales(self) -> np.ndarray:
        """(F,) float64 scale of the content at each frame over frame 0, linear from 1 to ``zoom``.

        Example::

            parse_trajectory({"version": 1, "frames": 3, "regions": [
                {"mask": "all", "zoom": 1.5}]}).regions[0].scales   # [1.0, 1.25, 1.5]
        """
        return np.linspace(1.0, self.zoom, len(self.path))

    def rasterize(self, height: int, width: int) -> np.ndarray:
        """The region's mask at a resolution.

        Example::

            mask = region.rasterize(32, 32)   # (32, 32) bool
            mask.sum()                        # number of pixels in the region

        Args:
            height: Frame height in pixels (positive int).
            width: Frame width in pixels (positive int).

        Returns:
            (H, W) bool array, True inside the region; pixel ``(i, j)`` is sampled at
            its centre ``((j + 0.5) / W, (i + 0.5) / H)``.

        Raises:
            TrajectoryError: ``regions[k].mask: covers no pixel at {height}x{width}``
                when the mask is empty at this resolution, or a bad size.
        """
        height = _check.integer(height, "rasterize: height", 1, 1 << 16)
        width = _check.integer(width, "rasterize: width", 1, 1 << 16)
        raster = _rasterize_mask(self.mask, self._grey, height, width)
        if not raster.any():
            raise _fail(f"regions[{self.index}].mask", f"covers no pixel at {height}x{width}")
        return raster

    def to_dict(self) -> dict:
        """The region as a JSON-serialisable dict (mask plus motion spec).

        Example::

            json.dumps(region.to_dict())
        """
        if self.tracks is not None:  # a point region has no mask key
            return json.loads(json.dumps(self.motion))
        return json.loads(json.dumps({"mask": self.mask, **self.motion}))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Region):
            return NotImplemented
        return (
            self.index == other.index
            and self.mask == other.mask
            and self.motion == other.motion
            and self.base_dir == other.base_dir
            and np.array_equal(self.path, other.path)
            and np.array_equal(self.displacements, other.displacements)
            and (self.tracks is None) == (other.tracks is None)
            and (self.tracks is None or np.array_equal(self.tracks, other.tracks))
        )

    def __hash__(self) -> int:
        return hash((self.index, json.dumps(self.to_dict(), sort_keys=True)))


@dataclass(frozen=True)
class Trajectory:
    """A validated trajectory file.

    Example::

        traj = load_trajectory("examples/two_objects.json", default_frames=8)
        masks = traj.masks(32, 32)                     # (R, 32, 32) bool
        paths = np.stack([r.path for r in traj.regions])  # (R, F, 2)

    Attributes:
        version: Format version (always 1).
        frames: Number of frames F (from the file, else the loader's default).
        regions: The regions, in file order.
    """

    version: int
    frames: int
    regions: tuple[Region, ...]

    def masks(self, height: int, width: int) -> np.ndarray:
        """All region masks at a resolution.

        Example::

            masks = traj.masks(32, 32)   # (R, 32, 32) bool

        Raises:
            TrajectoryError: if any region covers no pixel at this resolution.
        """
        return np.stack([r.rasterize(height, width) for r in self.regions])  # (R, H, W)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict that re-parses to an equal Trajectory.

        Example::

            same = parse_trajectory(traj.to_dict())
            assert same == traj

        ``frames`` is always written out, default speeds are explicit and image paths
        are absolute, so the dict does not depend on where it is saved.
        """
        return {"version": self.version, "frames": self.frames, "regions": [r.to_dict() for r in self.regions]}


# --------------------------------------------------------------------------- entry points


def parse_trajectory(
    data: object,
    *,
    default_frames: int = 16,
    base_dir: Path | None = None,
    source: str = "trajectory",
) -> Trajectory:
    """Validate an already-decoded trajectory document.

    Example::

        traj = parse_trajectory({"version": 1, "regions": [
            {"mask": "all", "direction": "right"}]}, default_frames=8)
        traj.regions[0].displacements   # (7, 2), each [0.05, 0.0]

    Args:
        data: The decoded JSON value (dicts, lists, str, numbers, ...).
        default_frames: Frame count used when the document has no ``frames``.
        base_dir: Folder against which relative image-mask paths are resolved
            (``None``: the current directory).
        source: Name used for whole-document errors (e.g. a missing top-level key).

    Returns:
        The validated :class:`Trajectory`.

    Raises:
        TrajectoryError: on any problem, with a one-line message starting with the
            field path (never any other exception type).
    """
    source = one_line(str(source)) or "trajectory"
    default_frames = _check.integer(default_frames, "default_frames", 2, MAX_FRAMES)
    doc = _check.object(data, source, allowed=("frames",), required=("version", "regions"))
    if is_bool(doc["version"]) or not isinstance(doc["version"], numbers.Integral) or doc["version"] != VERSION:
        raise _fail("version", f"must be {VERSION}, got {short(doc['version'])}")
    frames = _check.integer(doc["frames"], "frames", 2, MAX_FRAMES) if "frames" in doc else default_frames

    items = _check.array(doc["regions"], "regions", 1, MAX_REGIONS, "regions")
    regions = []
    for index, item in enumerate(items):
        path = f"regions[{index}]"
        if isinstance(item, Mapping) and "mask" not in item and ("radius" in item or "tracks" in item):
            regions.append(_parse_point_region(item, path, index, frames))
            continue
        region = _check.object(item, path, allowed=_MOTION_KINDS + ("speed", "zoom"), required=("mask",))
        mask, grey = _parse_mask(region["mask"], f"{path}.mask", base_dir)
        start = _mask_centroid(mask, grey)
        motion, xy = _parse_motion(region, path, frames, start)
        if grey is not None:
            grey.setflags(write=False)
        regions.append(
            Region(
                index=index,
                mask=mask,
                path=_readonly(xy),
                displacements=_readonly(np.diff(xy, axis=0)),
                base_dir=Path(mask["image"]).parent if grey is not None else None,
                motion=motion,
                _grey=grey,
            )
        )
    return Trajectory(version=VERSION, frames=frames, regions=tuple(regions))


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def load_trajectory(path: str | Path, *, default_frames: int = 16) -> Trajectory:
    """Read and validate a trajectory JSON file.

    Example::

        traj = load_trajectory("examples/pan_right.json")
        traj.frames, len(traj.regions)   # (8, 1)

    Args:
        path: The JSON file. Relative image-mask paths inside it are resolved
            against its folder.
        default_frames: Frame count used when the file has no ``frames``.

    Returns:
        The validated :class:`Trajectory`.

    Raises:
        TrajectoryError: if the file is missing/unreadable, is not valid UTF-8
            JSON (``<file>: not valid JSON (line L, column C)``), has duplicate
            keys, or fails validation.
    """
    try:
        file = Path(path)
        name = one_line(str(path))
    except Exception:
        raise _fail("path", f"must be a file path, got {type_name(path)}") from None
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise _fail(name, f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    except Exception as exc:
        raise _fail(name, f"cannot read file ({type(exc).__name__})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail(name, "not valid UTF-8 text") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise _fail(name, f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    except _DuplicateKey as exc:
        raise _fail(name, f"duplicate key {short(exc.args[0])} in a JSON object") from None
    except RecursionError:
        raise _fail(name, "not valid JSON (nested too deeply)") from None
    except Exception as exc:  # e.g. ValueError for huge integer literals
        raise _fail(name, f"not valid JSON ({short(type(exc).__name__)})") from None
    return parse_trajectory(
        data, default_frames=default_frames, base_dir=Path(os.path.abspath(file)).parent, source=name
    )

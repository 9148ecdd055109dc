"""What a control run achieved, measured on its output with the project's own trackers (``OUT.report.json``'s
``"outcome"`` and the last line ``moft control`` prints).

Example:
    >>> import numpy as np
    >>> from moft.io.trajectory import parse_trajectory
    >>> yy, xx = np.mgrid[:32, :32]
    >>> video = np.full((8, 32, 32, 3), 0.3, np.float32)                  # (F, H, W, 3)
    >>> for k in range(8):
    ...     video[k, (xx - 20 + k) ** 2 + (yy - 16) ** 2 <= 16] = (0.9, 0.1, 0.1)   # a disk moving left 1 px/frame
    >>> traj = parse_trajectory({"version": 1, "frames": 8, "regions": [
    ...     {"mask": {"circle": [0.62, 0.5, 0.2]}, "direction": "left", "speed": 0.05}]})
    >>> out = outcome(video, traj)
    >>> out["regions"][0]["moved_px"], out["regions"][0]["requested_px"], out["regions"][0]["share"]
    ([-7.0, 0.0], [-11.2, 0.0], 0.625)
    >>> outcome_lines(out)
    ['region 0: moved (-7.0, +0.0) px of requested (-11.2, +0.0): share 0.62, one piece']

Per region other than ``"all"``, the object is found in frame 0 (``moft.front.preview.find_objects``) and
followed through the video: by the centroid of its colour (``moft.eval.metrics.track_centroid``, the
synthetic-object protocol) when its pixels lie on average within ``FLAT`` of their mean colour (as an object
found by its colour does), else by the mean of LK point tracks of its pixels (``region_tracks``,
``mean_path``); with nothing found, by LK tracks of the region. ``moved_px`` is the net displacement (last found position minus first), ``share`` its projection on the requested
displacement over the requested length (1: as asked; NaN for a still request). ``pieces`` is the most
pieces the object's colour forms in one frame (``object_pieces``); ``split`` is whether the output shows
more than the unguided video of the same noise ever does (``split``), or, without it, more than one. For
``"all"`` the motion is the camera's: the summed median dense flow outside the other regions
(``camera_motion``). Given the unguided ``source``, each entry also says how that moved.
"""

from __future__ import annotations

import math

import numpy as np

from ..eval.metrics import camera_motion, mean_path, object_pieces, region_tracks, split, track_centroid
from ..io.video import to_float
from .preview import COLOUR_MATCH, find_objects

FLAT = COLOUR_MATCH  # mean RGB distance of an object's pixels to their mean colour under which its colour is followed


def _net(path: np.ndarray) -> np.ndarray | None:
    """(F, 2) path -> net (dx, dy) from its first to its last valid point, or None."""
    ok = np.all(np.isfinite(path), axis=1)
    if ok.sum() < 2:
        return None
    idx = np.flatnonzero(ok)
    return path[idx[-1]] - path[idx[0]]


def _follow(video: np.ndarray, obj, region_mask: np.ndarray) -> tuple[np.ndarray, str]:
    """(F, 2) path of a region's object and the tracker's name."""
    if obj.mask is not None:
        spread = float(np.linalg.norm(video[0][obj.mask] - np.asarray(obj.colour), axis=-1).mean())
        if spread < FLAT:
            return track_centroid(video, color=obj.colour, mask=obj.mask), "colour centroid"
        return mean_path(region_tracks(video, obj.mask)), "LK tracks of the object"
    return mean_path(region_tracks(video, region_mask)), "LK tracks of the region"


def _vec(v) -> list[float] | None:
    return None if v is None else [round(float(v[0]), 2) + 0.0, round(float(v[1]), 2) + 0.0]  # no -0.0


def _share(moved, wanted: np.ndarray) -> float:
    length = float(np.hypot(*wanted))
    if moved is None or length < 1e-6:
        return math.nan
    return round(float(np.dot(moved, wanted) / length ** 2), 3)


def _reference_motion(reference: np.ndarray, region, mask: np.ndarray, exclude) -> np.ndarray | None:
    """What a reference clip asks of a region: its own motion there, measured as the output's is."""
    if region.mask == "all":
        return np.nansum(camera_motion(reference, exclude=exclude), axis=0)
    return _net(mean_path(region_tracks(reference, mask)))


def outcome(frames: np.ndarray, trajectory, source: np.ndarray | None = None,
            reference: np.ndarray | None = None) -> dict:
    """Achieved motion per region of ``trajectory`` in ``frames`` (the rules: module docstring).

    Args:
        frames: ``(F, H, W, 3)`` the guided video, uint8 or float [0, 1].
        trajectory: the run's parsed ``Trajectory``.
        source: optional ``(F, H, W, 3)`` unguided video of the same noise.
        reference: optional ``(F, H, W, 3)`` reference clip the run copied the motion of (at the output's size):
            then the requested motion is the clip's own in each region, measured the same way (the trajectory
            gives the regions only).

    Returns:
        ``{"regions": [...]}``, one dict per region: ``region``, ``kind`` (``"object"`` or ``"camera"``),
        ``tracker``, ``requested_px``, ``moved_px`` (None if not followed), ``share``, and for objects
        ``found_at_px``, ``pieces``, ``split``; with ``source`` also ``source_moved_px``.
    """
    video = to_float(np.asarray(frames)).astype(np.float32)  # (F, H, W, 3)
    src = to_float(np.asarray(source)).astype(np.float32) if source is not None else None
    height, width = video.shape[1:3]
    masks = trajectory.masks(height, width)  # (R, H, W)
    objects = np.zeros((height, width), bool)
    for region, mask in zip(trajectory.regions, masks):
        if region.mask != "all":
            objects |= mask
    found = find_objects(src if src is not None else video, trajectory)
    entries = []
    for region, mask, obj in zip(trajectory.regions, masks, found):
        wanted = (region.path[-1] - region.path[0]) * [width, height]  # (2,) px
        exclude = objects if objects.any() and not objects.all() else None
        if reference is not None:
            wanted = _reference_motion(to_float(np.asarray(reference)).astype(np.float32), region, mask, exclude)
            wanted = np.zeros(2) if wanted is None else wanted
        entry = {"region": region.index, "requested_px": _vec(wanted),
                 "requested_by": "the reference clip (measured)" if reference is not None else "the trajectory"}
        if region.mask == "all":
            moved = np.nansum(camera_motion(video, exclude=exclude), axis=0)
            entry.update(kind="camera", tracker="median dense flow outside the other regions", moved_px=_vec(moved))
            if src is not None:
                entry["source_moved_px"] = _vec(np.nansum(camera_motion(src, exclude=exclude), axis=0))
        else:
            path, tracker = _follow(video, obj, mask)
            moved = _net(path)
            entry.update(kind="object", tracker=tracker, found_at_px=list(obj.centre) if obj.centre else None,
                         moved_px=_vec(moved), pieces=None, split=None)
            if tracker == "colour centroid":
                entry["pieces"] = int(object_pieces(video, obj.colour).max())
                entry["split"] = split(video, src, obj.colour) if src is not None else entry["pieces"] > 1
            if src is not None:
                entry["source_moved_px"] = _vec(_net(_follow(src, obj, mask)[0]))
        entry["share"] = _share(moved, wanted)
        entries.append(entry)
    return {"regions": entries}


def _xy(v) -> str:
    return f"({v[0]:+.1f}, {v[1]:+.1f})"


def outcome_lines(out: dict) -> list[str]:
    """One line per region, e.g. ``region 0: moved (-8.1, +3.8) px of requested (-11.0, +0.0): share 0.74,
    one piece``."""
    lines = []
    for e in out["regions"]:
        what = "the camera moved the content" if e["kind"] == "camera" else "moved"
        if e["moved_px"] is None:
            lines.append(f"region {e['region']}: could not be followed ({e['tracker']}); requested {_xy(e['requested_px'])} px")
            continue
        share = e["share"]
        asked = "the reference's" if e.get("requested_by", "").startswith("the reference") else "requested"
        line = (f"region {e['region']}: {what} {_xy(e['moved_px'])} px of {asked} {_xy(e['requested_px'])}"
                f"{f': share {share:.2f}' if share is not None and math.isfinite(share) else ''}")
        if e.get("pieces") is not None:
            line += ", one piece" if e["pieces"] == 1 else f", {e['pieces']} pieces"
            if e["split"]:
                line += " (split)"
        if e["kind"] == "object" and e["tracker"] != "colour centroid":
            line += f" ({e['tracker']})"
        if e.get("source_moved_px") is not None:
            line += f"; unguided {_xy(e['source_moved_px'])}"
        lines.append(line)
    return lines

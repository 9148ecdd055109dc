"""Point-drag suite: drag an object's point along a path and score it as the paper's Table 2 does.

Example:
    >>> from moft.eval.point_drag import load_point_suite, mean_distance
    >>> suite = load_point_suite("benchmarks/point_drag.json")
    >>> [s["name"] for s in suite["settings"]][:3]
    ['DIFT only', 'MOFT only (drag target)', 'MOFT + DIFT (paper schedule)']
    >>> import numpy as np
    >>> still = np.zeros((4, 16, 16, 3)); still[:, 6:10, 6:10] = 1.0    # a still square
    >>> mean_distance(still, np.array([[7.5, 7.5]] * 4))                  # asked to stay: distance 0
    0.0

Protocol (the paper's, on the synthetic organisms): per (prompt, seed) the unguided *source* video
is made; the prompt's coloured object is found in its frame 0 (``moft.eval.objects.object_box``, its largest
piece) and its centre is the point; the request drags it in a direction at a speed (fractions of the frame per
frame), ``point_region`` pixels around it being the region a drag target moves. Every row is made
from the same noise: ``unguided`` (the source), then each setting (a ``GuidanceConfig`` over the
suite's ``guidance`` and the model's ``moft.json``): the point loss alone (``points: "dift"``), the
MOFT loss alone with a drag target (``points: "off"``), both on Eq. 9's schedule (``"paper"``).

Scores: ``mean_distance`` (paper Table 2): LK tracks of the points within ``TRACK_RADIUS`` px of the
requested first point, averaged per frame (the paper averages a small region's CoTracker tracklet),
against the requested path, x over the width and y over the height (``metrics.trajectory_error``);
``ssim_outside`` against the source, outside the object's frame-0 box and the requested path
(dilated by the SSIM window); ``split`` (``metrics.split``: the object in more pieces than in the
source); ``cost``: the guided run's seconds (target included) over the source's.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..io.synthetic import COLORS, DIRECTIONS
from .objects import object_box, prompt_color
from .scoring import SSIM_REACH, dilate
from .suite import SuiteError, guidance_settings
from .metrics import region_points, split, ssim, track_points, trajectory_error

# bumped whenever ``point_request_of`` puts the point elsewhere, so cached rows of two protocols never mix
POINT_PROTOCOL = 2
TRACK_RADIUS = 3.0  # px around the requested first point whose LK tracks are averaged
SUITE_KEYS = {"name", "description", "steps", "guidance_scale", "guidance", "prompts", "seeds", "requests", "settings"}


def load_point_suite(path: str | Path) -> dict:
    """A point-drag suite file, checked before any model loads (``SuiteError``, one line)."""
    path = Path(path)
    try:
        suite = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(suite, dict) or set(suite) - SUITE_KEYS:
        raise SuiteError(f"{path}: expected an object with keys among {', '.join(sorted(SUITE_KEYS))}")
    for i, p in enumerate(suite.get("prompts", [])):
        if prompt_color(p) is None:
            raise SuiteError(f"{path}: prompts[{i}]: must name one of the colours {', '.join(COLORS)}")
    for i, r in enumerate(suite.get("requests", [])):
        if r.get("direction") not in DIRECTIONS or not 0 < float(r.get("speed", 0.05)) <= 0.5:
            raise SuiteError(f"{path}: requests[{i}]: needs a direction among {', '.join(DIRECTIONS)} and 0 < speed <= 0.5")
    for i, s in enumerate(suite.get("settings", [])):
        try:
            guidance_settings(s, suite.get("guidance"))
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"{path}: settings[{i}]: {str(exc).splitlines()[0]}") from None
    return suite


def mean_distance(video: np.ndarray, requested: np.ndarray, radius: float = TRACK_RADIUS) -> float:
    """The paper's Mean Distance: the tracked path of the dragged point against the requested one, in [0, 1].

    Args:
        video: ``(F, H, W, 3)`` in [0, 1] or uint8.
        requested: ``(F, 2)`` requested pixel path; tracking starts at its first point.
        radius: LK start points within this many pixels of it (at least the point itself).

    Returns:
        Mean over frames of the normalised distance (NaN when nothing could be tracked).
    """
    f, h, w = video.shape[:3]
    ys, xs = np.mgrid[0:h, 0:w]
    disk = (xs - requested[0, 0]) ** 2 + (ys - requested[0, 1]) ** 2 <= radius**2
    starts = np.concatenate([requested[:1], region_points(disk, spacing=1.0)]) if disk.any() else requested[:1]
    tracks = track_points(video, points=starts.astype(np.float32))  # (N, F, 2)
    with warnings.catch_warnings():  # a frame where every track was lost is NaN (skipped by trajectory_error)
        warnings.simplefilter("ignore", RuntimeWarning)
        offsets = tracks - tracks[:, :1]  # (N, F, 2) each start point's displacement
        path = requested[0] + np.nanmean(offsets, axis=0)  # (F, 2) the region's mean motion from the point
    return trajectory_error(path, requested, height=h, width=w)


def point_request_of(src_frames: np.ndarray, prompt: str, req: dict, *, largest_piece: bool = True) -> tuple | None:
    """The object's centre in the source and the requested path ``(F, 2)`` px, or None when not found.

    The point is the centroid of the largest piece of the prompt's colour in frame 0 (``POINT_PROTOCOL`` 2;
    ``largest_piece=False``: protocol 1, the centroid of every pixel of the colour, which lies on the
    background when the model drew several objects of it).

    Example:
        >>> frames = np.zeros((3, 32, 32, 3)); frames[:, 8:12, 20:24] = COLORS["red"]   # (F, H, W, 3)
        >>> frames[:, 24:26, 2:4] = COLORS["red"]                                         # a second, smaller one
        >>> path, box = point_request_of(frames, "a red disk", {"direction": "right", "speed": 0.125})
        >>> path.tolist()                                  # 4 px a frame to the right, from the larger object
        [[21.5, 9.5], [25.5, 9.5], [29.5, 9.5]]
    """
    f, h, w = src_frames.shape[:3]
    found = object_box(src_frames, prompt_color(prompt), largest_piece=largest_piece)
    if found is None:
        return None
    start, box = found
    step = float(req.get("speed", 0.05)) * np.array([w, h]) * np.asarray(DIRECTIONS[req["direction"]])
    return start + np.arange(f)[:, None] * step, box  # (F, 2)


def outside_mask(box: list[float], path: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``(F, H, W)`` background: not in the frame-0 box, nor in the box moved along the path, dilated."""
    f, h, w = shape
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    out = np.zeros((f, h, w), bool)
    for k in range(f):
        dx, dy = path[k] - path[0]
        here = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        there = (xs >= x0 + dx) & (xs <= x1 + dx) & (ys >= y0 + dy) & (ys <= y1 + dy)
        out[k] = ~dilate(here | there, SSIM_REACH)
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Per setting: requests, mean Mean Distance, mean SSIM outside (over the requests that have a background:
    ``ssim_requests``), split rate, median cost.

    Example:
        >>> rows = [dict(setting="s", status="ok", mean_distance=d, ssim_outside=q, split=0.0, cost=1.5)
        ...         for d, q in ((0.02, 0.9), (0.04, None))]      # the second: its boxes cover the whole frame
        >>> t = summarise(rows)[0]
        >>> t["requests"], round(t["mean_distance"], 3), t["ssim_outside"], t["ssim_requests"]
        (2, 0.03, 0.9, 1)
    """
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        ok = [r for r in rows if r["setting"] == name and r["status"] == "ok"]
        md = [r["mean_distance"] for r in ok if r["mean_distance"] is not None]
        # SSIM outside is undefined (None, or NaN in older rows) when the object's boxes leave no background
        kept = [r["ssim_outside"] for r in ok if r.get("ssim_outside") is not None and np.isfinite(r["ssim_outside"])]
        out.append({"setting": name, "requests": len(ok), "tracked": len(md),
                    "mean_distance": float(np.mean(md)) if md else None,
                    "mean_distance_se": float(np.std(md, ddof=1) / np.sqrt(len(md))) if len(md) > 1 else None,
                    "ssim_outside": float(np.mean(kept)) if kept else None, "ssim_requests": len(kept),
                    "split": float(np.mean([r["split"] for r in ok])) if ok else None,
                    "cost": float(np.median([r["cost"] for r in ok])) if ok else None})
    return out


def markdown_table(table: list[dict]) -> str:
    head = "| row | requests | Mean Distance (± s.e.) | SSIM outside | split | cost (x unguided) |\n|---|---|---|---|---|---|"
    lines = [head]
    for t in table:
        md = "n/a" if t["mean_distance"] is None else f"{t['mean_distance']:.3f}" + (
            f" ± {t['mean_distance_se']:.3f}" if t["mean_distance_se"] is not None else "")
        name = t["setting"] + (" (*default*)" if t.get("default") else "")
        ssim = "n/a" if t["ssim_outside"] is None else f"{t['ssim_outside']:.3f}" + (
            f" ({t['ssim_requests']})" if t.get("ssim_requests", t["requests"]) != t["requests"] else "")
        lines.append(f"| {name} | {t['requests']} | {md} | {ssim} | "
                     f"{100 * t['split']:.0f}% | {t['cost']:.1f} |")
    return "\n".join(lines)

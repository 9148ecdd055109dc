"""Look, then ask: frame 0 of the unguided video with each region, its requested path and the object found in it.

Example:
    >>> import numpy as np
    >>> from moft.io.trajectory import parse_trajectory
    >>> video = np.full((4, 32, 32, 3), 0.2, np.float32)                     # (F, H, W, 3) grey ground
    >>> yy, xx = np.mgrid[:32, :32]
    >>> video[:, (xx - 12) ** 2 + (yy - 10) ** 2 <= 9] = (1.0, 0.0, 0.0)      # a red disk centred at (12, 10)
    >>> traj = parse_trajectory({"version": 1, "frames": 4, "regions": [
    ...     {"mask": {"box": [0.2, 0.1, 0.6, 0.5]}, "direction": "left"},
    ...     {"mask": {"box": [0.6, 0.6, 0.9, 0.9]}, "direction": "up"}]})
    >>> found = find_objects(video, traj)
    >>> found[0].centre, found[0].warning
    ((12.0, 10.0), None)
    >>> found[1].warning
    'regions[1]: nothing in the region moves or stands out in frame 0 of the unguided video; put the region on the object'
    >>> preview_image(video[0], traj, found).shape                          # drawn 8x larger
    (256, 256, 3)

How the object is found (``find_objects``): a pixel belongs to some object when its colour stands out
from the frame's background (RGB distance above ``THRESHOLD`` from the frame's median colour); of the
8-connected pieces of such pixels (at least ``MIN_AREA``), the region's object is the one with the most
pixels inside the region. A region with no such piece gets, by the same choice, a piece of the pixels that
move (in frame 0 they differ by as much from their own median over the video's frames). The piece is then
narrowed to its own colour: the connected pixels within ``COLOUR_MATCH`` of the median colour of its pixels
in the region (``moft.eval.metrics.color_mask``'s rule), so a blob that touches a similar patch of
background is not merged with it. A region with none gets a one-line warning; so does one whose object lies
mostly outside it. The same threshold and connectivity are the synthetic-object protocol's
(``moft.eval.metrics.track_centroid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io.outputs import atomic_write_bytes
from ..io.video import to_float, to_uint8

THRESHOLD = 0.15  # RGB distance in [0, 1] units: "stands out" / "moves" (track_centroid's background mode)
MIN_AREA = 4  # pixels; smaller pieces are noise
COLOUR_MATCH = 0.25  # RGB distance: the object's own colour (color_mask's default threshold)
MOSTLY_OUTSIDE = 0.5  # warn when less than this share of the found object lies inside the region
COLORS = ((255, 220, 0), (0, 230, 255), (255, 60, 255), (60, 255, 60), (255, 140, 0), (140, 140, 255))  # per region
TINT = 0.35  # how far region pixels are blended toward the region's colour


@dataclass
class FoundObject:
    """What ``find_objects`` found in one region.

    Attributes:
        region: the region's index in the trajectory.
        centre: ``(x, y)`` px centroid of the whole object in frame 0, or None (nothing found, or ``"all"``).
        area: the object's pixels in frame 0 (0 when nothing was found).
        inside: share of the object's pixels inside the region.
        moves: whether some of its pixels move in the video.
        colour: ``(3,)`` mean RGB in [0, 1] of the object, or None.
        mask: ``(H, W)`` bool object pixels in frame 0, or None.
        warning: one line when the request looks blind, else None.
    """

    region: int
    centre: tuple[float, float] | None
    area: int
    inside: float
    moves: bool
    colour: tuple[float, float, float] | None
    mask: np.ndarray | None
    warning: str | None

    def describe(self) -> dict:
        """JSON-ready summary (no mask)."""
        return {"region": self.region, "centre_px": list(self.centre) if self.centre else None, "area_px": self.area,
                "inside": round(self.inside, 3), "moves": self.moves,
                "colour": [round(c, 3) for c in self.colour] if self.colour else None, "warning": self.warning}


def foreground(video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame 0's pixels that stand out from the frame's median colour, and those that move.

    Args:
        video: ``(F, H, W, 3)`` uint8 or float [0, 1].

    Returns:
        ``(stands_out, moves)``, each ``(H, W)`` bool.
    """
    video = to_float(np.asarray(video)).astype(np.float32)  # (F, H, W, 3)
    frame = video[0]  # (H, W, 3)
    stands_out = np.linalg.norm(frame - np.median(frame.reshape(-1, 3), axis=0), axis=-1) > THRESHOLD
    moves = np.linalg.norm(frame - np.median(video, axis=0), axis=-1) > THRESHOLD  # (H, W)
    return stands_out, moves


def _pieces(fg: np.ndarray) -> tuple:
    """8-connected pieces of a (H, W) bool map: count, labels, stats, centroids and which are big enough."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= MIN_AREA
    big[0] = False  # label 0 is the ground
    return count, labels, stats, centroids, big


def _refine(frame: np.ndarray, piece: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The piece's own colour: the connected pixels within ``COLOUR_MATCH`` of the median colour of its pixels
    inside the region (``moft.eval.metrics.color_mask``'s rule), where the piece lies in the region."""
    colour = np.median(frame[piece & region], axis=0)  # (3,)
    same = (np.linalg.norm(frame - colour, axis=-1) < COLOUR_MATCH).astype(np.uint8)  # (H, W)
    count, labels = cv2.connectedComponents(same, connectivity=8)
    overlap = np.bincount(labels[piece & region], minlength=count)
    overlap[0] = 0
    return labels == int(np.argmax(overlap)) if overlap.max() >= MIN_AREA else piece


def find_objects(video: np.ndarray, trajectory) -> list[FoundObject]:
    """The object inside each region of a trajectory, in frame 0 of ``video`` (the rule: module docstring).

    Args:
        video: ``(F, H, W, 3)`` uint8 or float [0, 1], usually the unguided video from the run's noise.
        trajectory: a parsed ``Trajectory``.

    Returns:
        One ``FoundObject`` per region, in order.
    """
    video = to_float(np.asarray(video)).astype(np.float32)  # (F, H, W, 3)
    height, width = video.shape[1:3]
    stands_out, moves = foreground(video)
    pieces = [_pieces(stands_out), _pieces(moves)]  # an object that stands out first, else one that moves
    found = []
    for region, mask in zip(trajectory.regions, trajectory.masks(height, width)):
        k = region.index
        if region.mask == "all":  # the camera: the whole frame; a pan needs something to carry
            blind = not (stands_out | moves).any() and float(video[0].std()) < THRESHOLD / 3
            found.append(FoundObject(k, None, 0, 1.0, bool(moves.any()), None, None,
                                     f"regions[{k}]: the frame is flat, nothing for a pan to carry" if blind else None))
            continue
        for count, labels, stats, centroids, big in pieces:
            overlap = np.bincount(labels[mask], minlength=count) * big  # (count,) object pixels inside the region
            if overlap.max() > 0:
                break
        else:
            found.append(FoundObject(k, None, 0, 0.0, False, None, None,
                                     f"regions[{k}]: nothing in the region moves or stands out in frame 0 of the "
                                     "unguided video; put the region on the object"))
            continue
        obj = _refine(video[0], labels == int(np.argmax(overlap)), mask)  # (H, W)
        area = int(obj.sum())
        inside = float((obj & mask).sum() / area)
        ys, xs = np.nonzero(obj)
        centre = (round(float(xs.mean()), 2), round(float(ys.mean()), 2))
        warning = None
        if inside < MOSTLY_OUTSIDE:
            warning = (f"regions[{k}]: the object it touches lies mostly outside it ({inside:.0%} inside, centre at "
                       f"x={centre[0] / width:.2f}, y={centre[1] / height:.2f} of the frame); move the region onto it")
        colour = tuple(round(float(c), 4) for c in video[0][obj].mean(0))
        found.append(FoundObject(k, centre, area, inside, bool((obj & moves).any()), colour, obj, warning))
    return found


def _outline(canvas: np.ndarray, mask: np.ndarray, colour, thickness: int) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in colour), thickness)


def preview_image(frame: np.ndarray, trajectory, found: list[FoundObject] | None = None,
                  scale: int | None = None) -> np.ndarray:
    """Frame 0 with each region (tinted, outlined, numbered), its requested path (a line through the
    per-frame points, an arrow at the end, a dot on the end point) and the object found in it (a white
    outline and a cross on its centre).

    Args:
        frame: ``(H, W, 3)`` uint8 or float [0, 1].
        trajectory: a parsed ``Trajectory``.
        found: ``find_objects``'s result, or None to draw regions and paths only.
        scale: integer upscaling (default: to about 256 px on the long side).

    Returns:
        ``(H * scale, W * scale, 3)`` uint8 RGB.
    """
    frame = to_uint8(np.asarray(frame)[None])[0]  # (H, W, 3)
    height, width = frame.shape[:2]
    s = scale or max(1, 256 // max(height, width))
    canvas = cv2.resize(frame, (width * s, height * s), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    big = np.kron(trajectory.masks(height, width), np.ones((s, s), bool)) > 0  # (R, H*s, W*s)
    for region, mask in zip(trajectory.regions, big):
        if region.mask != "all":
            colour = np.asarray(COLORS[region.index % len(COLORS)], np.float32)
            canvas[mask] = (1 - TINT) * canvas[mask] + TINT * colour
    canvas = canvas.round().astype(np.uint8)
    for region, mask in zip(trajectory.regions, big):
        colour = COLORS[region.index % len(COLORS)]
        if region.mask != "all":
            _outline(canvas, mask, colour, 2)
        pts = np.round(region.path * [width * s, height * s]).astype(np.int32)  # (F, 2) px on the canvas
        cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)
        if len(pts) > 1 and np.any(pts[-1] != pts[0]):
            tail = pts[max(0, len(pts) - 3)]
            cv2.arrowedLine(canvas, tuple(map(int, tail)), tuple(map(int, pts[-1])), colour, 2, cv2.LINE_AA,
                            tipLength=0.5)
        cv2.circle(canvas, tuple(map(int, pts[-1])), 3, colour, -1, cv2.LINE_AA)
        ys, xs = np.nonzero(mask)
        cv2.putText(canvas, str(region.index), (int(xs.min()) + 3, int(ys.min()) + 14), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, colour, 1, cv2.LINE_AA)
    for obj in found or []:
        if obj.mask is not None:
            _outline(canvas, np.kron(obj.mask, np.ones((s, s), bool)), (255, 255, 255), 1)
            x, y = (int(round((c + 0.5) * s)) for c in obj.centre)
            cv2.drawMarker(canvas, (x, y), (255, 255, 255), cv2.MARKER_CROSS, 2 * s, 1)
    return canvas


def write_preview(path: str | Path, video: np.ndarray, trajectory) -> list[FoundObject]:
    """Find the objects, draw frame 0 of ``video`` with the request (``preview_image``) and write it as PNG
    (atomically). Returns ``find_objects``'s result."""
    found = find_objects(video, trajectory)
    image = preview_image(np.asarray(video)[0], trajectory, found)
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    atomic_write_bytes(Path(path), png.tobytes())
    return found

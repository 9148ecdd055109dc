"""The synthetic-object protocol's objects: found by the prompt's colour word, boxed, asked to move.

Example:
    >>> import numpy as np
    >>> frames = np.zeros((8, 32, 32, 3)); frames[:, 8:12, 20:24] = COLORS["red"]       # (F, H, W, 3)
    >>> [round(float(v), 2) for v in object_box(frames, prompt_color("a red disk"))[1]]  # [x0, y0, x1, y1]
    [0.58, 0.21, 0.79, 0.42]

The shipped model draws coloured organisms (``moft.io.synthetic``); a prompt names the colour of
the object to control, which is found in the unguided source's frame 0 by that colour
(``object_box``) and followed by its colour centroid when scored (``moft.eval.scoring``). A
request ``{"objects": [{"color": "first", ...}, {"color": "second", ...}]}`` names the prompt's
first and second colour words.
"""

from __future__ import annotations

import numpy as np

from ..io.synthetic import COLORS, DIRECTIONS, make_clip
from ..io.trajectory import parse_trajectory


def prompt_color(prompt: str) -> str | None:
    """The first colour word of a prompt (``moft.io.synthetic.COLORS``), or None.

    Example:
        >>> prompt_color("a blue fish, a red disk"), prompt_color("a dog")
        ('blue', None)
    """
    return next((w for w in prompt.lower().replace(",", " ").split() if w in COLORS), None)


def object_box(frames: np.ndarray, color: str, pad: float = 1.5) -> tuple[np.ndarray, list[float]] | None:
    """Centroid (x, y) px and a square box [x0, y0, x1, y1] (fractions) around the object in frame 0,
    or None when fewer than 3 pixels have its colour.

    Example:
        >>> frames = np.zeros((2, 32, 32, 3)); frames[:, 8:12, 20:24] = COLORS["red"]   # (F, H, W, 3)
        >>> centre, box = object_box(frames, "red")
        >>> centre.tolist(), object_box(frames, "blue")
        ([21.5, 9.5], None)
    """
    rgb = np.asarray(COLORS[color])
    dist = np.linalg.norm(frames[0] - rgb, axis=-1)  # (H, W)
    mask = dist < 0.25
    if mask.sum() < 3:
        return None
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    c = np.array([xs.mean(), ys.mean()])
    r = max(np.sqrt(mask.sum() / np.pi), 2.0) * pad
    box = [max(0.0, (c[0] - r + 0.5) / w), max(0.0, (c[1] - r + 0.5) / h),
           min(1.0, (c[0] + r + 0.5) / w), min(1.0, (c[1] + r + 0.5) / h)]
    return c, box


def _parts(prompt: str, req: dict) -> list[dict]:
    """A synthetic-object request as parts ``{color, direction, region}``: one per controlled object (or the pan)."""
    if "objects" in req:
        named = [w for w in prompt.lower().replace(",", " ").split() if w in COLORS]
        pick = {"first": 0, "second": 1}
        return [{"color": named[pick[o["color"]]] if o["color"] in pick else o["color"], "direction": o["direction"],
                 "region": "object"} for o in req["objects"]]
    direction = req.get("direction") or req["reference"]["direction"]
    return [{"color": prompt_color(prompt), "direction": direction, "region": req["region"]}]


def synthetic_request(src_frames, prompt, req, seed) -> tuple | str:
    """A synthetic-object request on its source video: (parts, trajectory, reference clip), or why not.

    Each part (one per controlled object, or the pan) gets its object's frame-0 centroid
    (``start``, px) and the path asked of it (``requested``, (F, 2) px); the trajectory holds a box
    around each object (or the whole frame for a pan); a ``reference`` request gets a synthetic pan
    clip (F, H, W, 3) uint8.

    Example:
        >>> frames = np.zeros((8, 32, 32, 3)); frames[:, 8:12, 20:24] = COLORS["red"]
        >>> parts, traj, ref = synthetic_request(frames, "a red disk", {"region": "object", "direction": "left"}, 0)
        >>> parts[0]["requested"][-1].round(2).tolist(), traj.frames, ref   # 7 frames x 1.6 px left of x = 21.5
        ([10.3, 9.5], 8, None)
    """
    f, h, w = src_frames.shape[:3]
    speed = float(req.get("speed", 0.05))
    parts, regions = _parts(prompt, req), []
    for part in parts:
        found = object_box(src_frames, part["color"])
        if found is None:
            return f"no {part['color']} object in source"
        part["start"], box = found
        d = np.asarray(DIRECTIONS[part["direction"]])
        part["requested"] = part["start"] + np.arange(f)[:, None] * speed * np.array([w, h]) * d  # (F, 2) px
        regions.append({"mask": "all" if part["region"] == "all" else {"box": box},
                        "direction": list(d), "speed": speed})
    traj = parse_trajectory({"version": 1, "frames": f, "regions": regions})
    reference = None
    if "reference" in req:
        clip = make_clip(np.random.default_rng(seed + 7), kind="pan", n_frames=f, size=h,
                         direction=req["reference"]["direction"], speed=speed * 32)
        reference = (clip.frames * 255).round().astype(np.uint8)
    return parts, traj, reference

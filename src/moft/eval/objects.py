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

An image-to-video model is handed an image the suite makes (``suite_image``): the still scene of
``moft.io.synthetic.still_scene`` with the prompt's objects, its layout drawn from the item's seed
and prompt; the object's box is then found in that image, not in a generated frame.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from ..io.synthetic import COLORS, DIRECTIONS, SHAPES, make_clip, still_scene
from ..io.trajectory import parse_trajectory


def prompt_color(prompt: str) -> str | None:
    """The first colour word of a prompt (``moft.io.synthetic.COLORS``), or None.

    Example:
        >>> prompt_color("a blue fish, a red disk"), prompt_color("a dog")
        ('blue', None)
    """
    return next((w for w in prompt.lower().replace(",", " ").split() if w in COLORS), None)


# bumped whenever ``suite_image`` draws other images, so work folders never mix rows of two (run_identity holds it)
SUITE_IMAGE_VERSION = 1


def prompt_objects(prompt: str) -> list[tuple[str, str]]:
    """The prompt's objects as ``(colour, shape)``: each colour word with the first shape word after it
    (before the next colour word; ``disk`` when none).

    Example:
        >>> prompt_objects("a yellow disk and a green square"), prompt_objects("a red ball"), prompt_objects("a dog")
        ([('yellow', 'disk'), ('green', 'square')], [('red', 'disk')], [])
    """
    words = prompt.lower().replace(",", " ").split()
    out = []
    for i, w in enumerate(words):
        if w in COLORS:
            after = next((i + 1 + j for j, v in enumerate(words[i + 1:]) if v in COLORS), len(words))
            out.append((w, next((v for v in words[i + 1:after] if v in SHAPES), "disk")))
    return out


def suite_image(prompt: str, seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image an image-to-video model animates in a suite item: the prompt's objects
    (``prompt_objects``; the background alone when it names none) in a still scene
    (``moft.io.synthetic.still_scene``) drawn from ``(seed, prompt)``, so every prompt of a seed gets
    its own reproducible layout.

    Example:
        >>> image, centres, radii = suite_image("a green square standing still", 400, 32, 32)
        >>> image.shape, image.dtype, centres.shape
        ((32, 32, 3), dtype('uint8'), (1, 2))

    Returns:
        ``(H, W, 3)`` uint8 image, the objects' centres ``(K, 2)`` px (x, y) and radii ``(K,)`` px.
    """
    rng = np.random.default_rng([seed, zlib.crc32(prompt.encode())])
    frame, centres, radii = still_scene(rng, prompt_objects(prompt), height, width)
    return (frame * 255).round().astype(np.uint8), centres, radii


def object_box(frames: np.ndarray, color: str, pad: float = 1.5, *,
               largest_piece: bool = False) -> tuple[np.ndarray, list[float]] | None:
    """Centroid (x, y) px and a square box [x0, y0, x1, y1] (fractions) around the object in frame 0,
    or None when fewer than 3 pixels have its colour.

    With ``largest_piece`` only the largest 8-connected piece of the colour counts (where a model drew
    several objects of the colour, the centroid of all of them can lie on the background between them:
    a point a user would never click).

    Example:
        >>> frames = np.zeros((2, 32, 32, 3)); frames[:, 8:12, 20:24] = COLORS["red"]   # (F, H, W, 3)
        >>> centre, box = object_box(frames, "red")
        >>> centre.tolist(), object_box(frames, "blue")
        ([21.5, 9.5], None)
        >>> frames[:, 24:26, 2:4] = COLORS["red"]                                         # a second, smaller one
        >>> object_box(frames, "red")[0].round(1).tolist(), object_box(frames, "red", largest_piece=True)[0].tolist()
        ([17.7, 12.5], [21.5, 9.5])
    """
    rgb = np.asarray(COLORS[color])
    dist = np.linalg.norm(frames[0] - rgb, axis=-1)  # (H, W)
    mask = dist < 0.25
    if mask.sum() < 3:
        return None
    if largest_piece:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        mask = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # label 0 is the background
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

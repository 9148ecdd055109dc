"""Synthetic motion videos with ground truth: training data, labelled evaluation sets and pans.

Everything is rendered analytically (sub-pixel exact), deterministic given a seed.

Example:
    >>> import numpy as np
    >>> from moft.io.synthetic import make_clip, pan_video
    >>> clip = make_clip(np.random.default_rng(0), kind="object", direction="left")
    >>> clip.frames.shape, clip.caption        # doctest: +SKIP
    ((8, 32, 32, 3), 'a red disk moving left')
    >>> pan = pan_video(np.random.default_rng(1), direction=(1.0, 0.0), speed=2.0)
    >>> pan.tracks.shape                         # (objects, frames, xy)
    (1, 8, 2)

Conventions: pixel coordinates (x right, y down, pixel centres at integers as in OpenCV and
``moft.eval.metrics``; the fraction of the frame is ``(px + 0.5) / size``); a clip's ``tracks`` hold each object's centre per
frame in pixels; a pan moves the *content* in ``direction`` (as a trajectory region ``"all"`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.15, 0.15),
    "green": (0.15, 0.82, 0.2),
    "blue": (0.18, 0.3, 0.95),
    "yellow": (0.95, 0.88, 0.12),
    "white": (0.97, 0.97, 0.97),
    "purple": (0.62, 0.2, 0.85),
    "cyan": (0.1, 0.85, 0.9),
    "orange": (0.98, 0.55, 0.08),
}
SHAPES = ("disk", "square")
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "down right": (0.7071067811865476, 0.7071067811865476),
    "down": (0.0, 1.0),
    "down left": (-0.7071067811865476, 0.7071067811865476),
    "left": (-1.0, 0.0),
    "up left": (-0.7071067811865476, -0.7071067811865476),
    "up": (0.0, -1.0),
    "up right": (0.7071067811865476, -0.7071067811865476),
}
KINDS = ("object", "reverse", "still", "two_objects", "pan")
KIND_WEIGHTS = (0.5, 0.1, 0.1, 0.15, 0.15)
SPEED_RANGE = (0.75, 2.25)  # pixels per frame at 32x32
RADIUS_RANGE = (3.0, 5.5)


@dataclass
class Clip:
    """One synthetic video with its ground truth.

    Attributes:
        frames: ``(F, H, W, 3)`` float32 in [0, 1].
        caption: the text prompt describing it.
        tracks: ``(K, F, 2)`` float64 centre of each object per frame, pixels (x, y).
        directions: per object, the direction name of its (first) motion, or ``"still"``.
        kind: one of ``KINDS``.
        speed: pixels per frame of the (first) object's or the pan's motion.
        colors / shapes: per object.
        masks: ``(F, H, W)`` float32 in [0, 1], the objects' coverage per frame (their union).
    """

    frames: np.ndarray
    caption: str
    tracks: np.ndarray
    directions: list[str]
    kind: str
    speed: float
    colors: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)
    masks: np.ndarray | None = None


def background_texture(rng: np.random.Generator):
    """A smooth random texture as a function ``f(x, y) -> (..., 3)`` (analytic, pannable)."""
    base = rng.uniform(0.25, 0.55, size=3) * rng.uniform(0.6, 1.0)
    n_waves = 4
    freq = rng.uniform(0.6, 3.0, size=(n_waves, 1)) * np.stack(
        [np.cos(a := rng.uniform(0, 2 * np.pi, n_waves)), np.sin(a)], axis=1
    )  # (W, 2) cycles per 32 px
    phase = rng.uniform(0, 2 * np.pi, size=n_waves)
    amp = rng.uniform(0.03, 0.09, size=(n_waves, 3))  # (W, 3)

    def texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        arg = 2 * np.pi * (x[..., None] * freq[:, 0] + y[..., None] * freq[:, 1]) / 32.0 + phase
        return base + np.sin(arg) @ amp  # (..., 3)

    return texture


def _alpha(shape: str, x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """Anti-aliased coverage of a shape centred at (cx, cy) with radius / half-side r."""
    if shape == "disk":
        dist = np.hypot(x - cx, y - cy)
    else:
        dist = np.maximum(np.abs(x - cx), np.abs(y - cy))
    return np.clip(r + 0.5 - dist, 0.0, 1.0)


def render(
    background,
    objects: list[tuple[str, tuple[float, float, float], float, np.ndarray]],
    camera: np.ndarray,
    size: int | tuple[int, int],
    coverage: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render frames of objects over a background seen through a moving camera.

    Args:
        background: texture function from ``background_texture``.
        objects: ``(shape, rgb, radius, centres (F, 2))`` in scene pixels.
        camera: ``(F, 2)`` offset of the view into the scene, pixels.
        size: frame side in pixels, or ``(height, width)``.
        coverage: also return the objects' coverage ``(F, H, W)`` (union of their alphas).

    Returns:
        ``(F, H, W, 3)`` float32 frames (and the coverage if asked).
    """
    n_frames = camera.shape[0]
    height, width = (size, size) if np.ndim(size) == 0 else size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)  # (H, W) pixel centres at integers (OpenCV)
    out = np.empty((n_frames, height, width, 3), dtype=np.float32)
    cover = np.zeros((n_frames, height, width), dtype=np.float32)
    for f in range(n_frames):
        sx, sy = xs + camera[f, 0], ys + camera[f, 1]
        img = background(sx, sy)  # (H, W, 3)
        for shape, rgb, r, centres in objects:
            a = _alpha(shape, sx, sy, centres[f, 0], centres[f, 1], r)[..., None]
            img = img * (1 - a) + np.asarray(rgb) * a
            cover[f] = np.maximum(cover[f], a[..., 0])
        out[f] = np.clip(img, 0.0, 1.0)
    return (out, cover) if coverage else out


def still_scene(rng: np.random.Generator, objects: list[tuple[str, str]], height: int,
                width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of a still scene as the clips draw it, at ``height`` x ``width``: a ``background_texture``
    and each ``(colour, shape)`` object, its radius drawn from ``RADIUS_RANGE`` (scaled as ``make_clip``
    scales it, by the short side over 32) and its centre anywhere it fits, away from the objects placed
    before it (up to 20 draws: they would hide each other).

    Example:
        >>> frame, centres, radii = still_scene(np.random.default_rng(0), [("red", "disk")], 32, 48)
        >>> frame.shape, centres.shape, bool(RADIUS_RANGE[0] <= radii[0] <= RADIUS_RANGE[1])
        ((32, 48, 3), (1, 2), True)

    Returns:
        ``(H, W, 3)`` float32 frame in [0, 1], the centres ``(K, 2)`` px (x, y) and radii ``(K,)`` px.
    """
    scale = min(height, width) / 32.0
    background = background_texture(rng)
    placed = []  # (shape, rgb, radius, centre (2,))
    for color, shape in objects:
        r = float(rng.uniform(*RADIUS_RANGE)) * scale
        for _ in range(20):
            centre = rng.uniform([r + 1.0, r + 1.0], [width - r - 1.0, height - r - 1.0])  # (2,) px
            if all(np.hypot(*(centre - c)) > r + q + 1.0 for _, _, q, c in placed):
                break
        placed.append((shape, COLORS[color], r, centre))
    frame = render(background, [(s, rgb, r, c[None]) for s, rgb, r, c in placed], np.zeros((1, 2)), (height, width))
    centres = np.array([c for *_, c in placed]).reshape(-1, 2)  # (K, 2)
    return frame[0], centres, np.array([r for _, _, r, _ in placed])


def _straight_path(
    rng: np.random.Generator, direction: np.ndarray, speed: float, n_frames: int, size: int, r: float,
    reverse_at: int | None = None, cross: bool = False,
) -> np.ndarray:
    """Centres ``(F, 2)`` moving at ``speed`` px/frame, kept inside the frame; optional reversal.

    ``cross``: start at the edge behind the motion (on each axis it moves along), so the object
    crosses the frame instead of starting anywhere it can.
    """
    steps = np.ones(n_frames - 1)
    if reverse_at is not None:
        steps[reverse_at:] = -1.0
    offsets = np.concatenate([[0.0], np.cumsum(steps)])[:, None] * speed * direction  # (F, 2)
    lo = r + 1.0 - offsets.min(axis=0)
    hi = size - r - 1.0 - offsets.max(axis=0)
    start = rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi))  # (2,)
    if cross:
        start = np.where(direction > 1e-9, lo, np.where(direction < -1e-9, hi, start))
    return start + offsets


def make_clip(
    rng: np.random.Generator,
    *,
    size: int = 32,
    n_frames: int = 8,
    kind: str | None = None,
    direction: str | None = None,
    speed: float | None = None,
    color: str | None = None,
    shape: str | None = None,
    describe_motion: bool | None = None,
    kind_weights: dict[str, float] | None = None,
    describe_prob: float = 0.8,
    cross_prob: float = 0.0,
) -> Clip:
    """Sample one clip; any unset attribute is drawn at random.

    ``kind`` is drawn with ``kind_weights`` (default ``KIND_WEIGHTS``; missing kinds weigh 0), the
    motion is named in the caption with probability ``describe_prob``, and with probability
    ``cross_prob`` moving objects start at the edge behind their motion and cross the frame (so the
    direction also decides where the object is in each frame, not only how it moves).

    Example:
        >>> clip = make_clip(np.random.default_rng(3), kind="reverse", direction="right")
        >>> clip.caption.endswith("moving right then left")
        True
    """
    if kind is None:
        weights = np.asarray(KIND_WEIGHTS)
        if kind_weights is not None:
            weights = np.asarray([kind_weights.get(k, 0.0) for k in KINDS], dtype=np.float64)
            if set(kind_weights) - set(KINDS) or weights.sum() <= 0 or (weights < 0).any():
                raise ValueError(f"kind_weights must weigh kinds among {KINDS} (non-negative), got {kind_weights}")
            weights = weights / weights.sum()
        kind = str(rng.choice(KINDS, p=weights))
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    scale = size / 32.0
    speed = float(speed if speed is not None else rng.uniform(*SPEED_RANGE)) * scale
    describe = bool(rng.random() < describe_prob) if describe_motion is None else describe_motion
    background = background_texture(rng)
    n_obj = 2 if kind == "two_objects" else 1
    names = list(DIRECTIONS)
    colors = [color or str(rng.choice(list(COLORS)))]
    if n_obj == 2:
        colors.append(str(rng.choice([c for c in COLORS if c != colors[0]])))
    shapes = [shape or str(rng.choice(SHAPES)) for _ in range(n_obj)]
    dirs = [direction or str(rng.choice(names))]
    if n_obj == 2:
        dirs.append(str(rng.choice(names)))
    cross = bool(rng.random() < cross_prob) if cross_prob > 0 else False  # no draw: default streams unchanged
    camera = np.zeros((n_frames, 2))
    objects, tracks, words = [], [], []
    for k in range(n_obj):
        r = float(rng.uniform(*RADIUS_RANGE)) * scale
        d = np.asarray(DIRECTIONS[dirs[k]])
        if kind in ("still", "pan"):
            centres = _straight_path(rng, d, 0.0, n_frames, size, r)
        elif kind == "reverse":
            centres = _straight_path(rng, d, speed, n_frames, size, r, reverse_at=n_frames // 2, cross=cross)
        else:
            centres = _straight_path(rng, d, speed, n_frames, size, r, cross=cross)
        objects.append((shapes[k], COLORS[colors[k]], r, centres))
        tracks.append(centres)
        noun = f"a {colors[k]} {shapes[k]}"
        if kind == "object" or kind == "two_objects":
            words.append(f"{noun} moving {dirs[k]}" if describe else noun)
        elif kind == "reverse":
            back = _opposite(dirs[k])
            words.append(f"{noun} moving {dirs[k]} then {back}" if describe else noun)
        else:
            words.append(noun)
    if kind == "pan":
        d = np.asarray(DIRECTIONS[dirs[0]])
        camera = -np.arange(n_frames)[:, None] * speed * d  # content moves along d
        track = np.stack([t - camera for t in tracks])
        caption = f"{words[0]}, the whole scene moving {dirs[0]}" if describe else words[0]
    else:
        track = np.stack(tracks)
        caption = " and ".join(words)
        if kind == "still" and describe:
            caption = f"{words[0]} standing still"
    frames, masks = render(background, objects, camera, size, coverage=True)
    if kind == "still":
        dirs = ["still"]
    return Clip(frames, caption, track, dirs, kind, speed, colors, shapes, masks)


def _opposite(name: str) -> str:
    d = DIRECTIONS[name]
    return next(k for k, v in DIRECTIONS.items() if np.allclose(v, (-d[0], -d[1])))


def object_weights(masks: np.ndarray, size: tuple[int, int], weight: float) -> np.ndarray:
    """Per-position loss weights ``1 + weight x`` the objects' coverage, on a coarser (latent) grid.

    The objects are a few percent of the pixels, so a plain MSE spends itself on the background
    texture; these weights (normalised by their mean where used) make the objects count.

    Example:
        >>> clip = make_clip(np.random.default_rng(0), kind="object")
        >>> object_weights(clip.masks, (16, 16), 10.0).shape   # (F, h, w)
        (8, 16, 16)

    Args:
        masks: ``(..., F, H, W)`` coverage in [0, 1] (``Clip.masks``, stacked).
        size: ``(h, w)``, dividing ``(H, W)``.
        weight: 0 gives all ones.

    Returns:
        ``(..., F, h, w)`` float32 weights: the coverage block-averaged to ``size``, times ``weight``, plus 1.
    """
    (hh, ww), (h, w) = masks.shape[-2:], size
    if hh % h or ww % w:
        raise ValueError(f"object_weights: grid {size} does not divide the frames' {(hh, ww)}")
    blocks = masks.reshape(*masks.shape[:-2], h, hh // h, w, ww // w)  # (..., F, h, H/h, w, W/w)
    return (1 + weight * blocks.mean(axis=(-3, -1))).astype(np.float32)


def make_batch(rng: np.random.Generator, n: int, **kwargs) -> tuple[np.ndarray, list[str]]:
    """``n`` random clips stacked: frames ``(n, F, H, W, 3)`` float32 and their captions."""
    clips = [make_clip(rng, **kwargs) for _ in range(n)]
    return np.stack([c.frames for c in clips]), [c.caption for c in clips]


def pan_video(
    rng: np.random.Generator,
    *,
    direction: tuple[float, float],
    speed: float = 2.0,
    size: int = 32,
    n_frames: int = 8,
) -> Clip:
    """A whole-frame pan of a random still scene (the paper's synthetic videos for channel fitting).

    Args:
        rng: random generator (chooses the scene).
        direction: unit-ish ``(dx, dy)`` in which the content moves.
        speed: pixels per frame.
        size: frame side in pixels.
        n_frames: frames.

    Returns:
        A ``Clip`` of kind ``"pan"`` whose ``tracks`` follow the scene's one object.
    """
    d = np.asarray(direction, dtype=np.float64)
    d = d / max(np.linalg.norm(d), 1e-12)
    name = min(DIRECTIONS, key=lambda k: np.linalg.norm(np.asarray(DIRECTIONS[k]) - d))
    return make_clip(rng, size=size, n_frames=n_frames, kind="pan", direction=name,
                     speed=speed * 32.0 / size, describe_motion=False)

"""The point-drag loss (paper Eq. 4) and the schedule that runs it with the MOFT loss (Eq. 9).

Example:
    >>> import torch
    >>> from moft.method.points import paper_schedule, point_loss, sample_features
    >>> feats = torch.randn(4, 8, 16, 16)                # (F, C, h, w) features of a 64x64 video
    >>> points = torch.tensor([[[10.0, 20.0]]] * 4)       # (F, N, 2) pixels: one point that stays put
    >>> sample_features(feats, points, size=(64, 64)).shape    # (F, N, C)
    torch.Size([4, 1, 8])
    >>> visible = torch.ones(4, 1, dtype=torch.bool)      # (F, N)
    >>> float(point_loss(feats, points, visible, size=(64, 64))) > 0   # the content does not follow it
    True
    >>> paper_schedule(25)[5:8]                           # 25 steps: MOFT, then both, then the point loss
    [('moft',), ('moft', 'point'), ('point',)]

Eq. 4: ``L_p = sum_{i=2..F} ||D(p_i) - sg(D(p_1))||``, with ``D(p)`` the feature (DIFT in the
paper) at point ``p`` and ``sg`` the stop-gradient: every frame's feature at its requested point
is pulled to frame 0's feature at frame 0's point. Points are pixels of the frame (x right, y
down, pixel centres at integers, as in ``moft.io.synthetic`` and ``moft.io.tracks``); a feature grid
of ``h x w`` cells over a ``W x H`` frame puts pixel ``x`` at cell ``(x + 0.5) * w / W - 0.5``
(cell centres at integers too: ``grid_sample(..., align_corners=False)``). Tracks ``(N, F, 2)``
become the ``(F, N, 2)`` these functions take with ``rearrange(points, "n f xy -> f n xy")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

__all__ = ["POINT_MODES", "PointRequest", "paper_schedule", "point_gradient_mask", "point_loss", "point_request",
           "point_schedule", "sample_features"]

# which losses guide which steps (GuidanceConfig.points): "off" the MOFT loss at the guided steps (no points);
# "paper" Eq. 9 (MOFT, both, the point loss, none); "dift" the point loss alone at Eq. 9's point steps
POINT_MODES = ("off", "paper", "dift")

# Eq. 9 over 25 steps: t >= 19 MOFT only, 19 > t >= 18 both, 18 > t >= 5 point only, t < 5 none
PAPER_STEPS = 25
PAPER_THRESHOLDS = (19, 18, 5)  # t1, t2, t3


def _neighbourhood(radius: float, device: torch.device) -> torch.Tensor:
    """``(M, 2)`` integer offsets ``(dx, dy)`` with ``dx^2 + dy^2 <= radius^2`` (``(0, 0)`` first)."""
    r = int(math.floor(radius))
    d = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    offsets = torch.stack([dx.flatten(), dy.flatten()], dim=1)  # ((2r + 1)^2, 2)
    keep = offsets.pow(2).sum(1) <= radius**2
    return offsets[keep]


def _bilinear(feats: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bilinear read of ``(F, C, h, w)`` at cell coordinates ``u, v`` ``(F, P)``, clamped to the border.

    Returns ``(F, C, P)``; matches ``grid_sample(mode="bilinear", padding_mode="border",
    align_corners=False)``.
    """
    f, c, h, w = feats.shape
    u = u.clamp(0, w - 1)
    v = v.clamp(0, h - 1)
    x0, y0 = u.floor().long(), v.floor().long()  # (F, P)
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    wx, wy = (u - x0).unsqueeze(1), (v - y0).unsqueeze(1)  # (F, 1, P)
    flat = rearrange(feats, "f c h w -> f c (h w)")

    def read(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # (F, P) -> (F, C, P)
        return flat.gather(2, (y * w + x).unsqueeze(1).expand(f, c, -1))

    top = read(y0, x0) * (1 - wx) + read(y0, x1) * wx
    bottom = read(y1, x0) * (1 - wx) + read(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def sample_features(feats: torch.Tensor, points: torch.Tensor, size: tuple[int, int],
                    radius: float = 0.0) -> torch.Tensor:
    """Each frame's features at its points, averaged over a small neighbourhood.

    Example:
        >>> feats = torch.arange(16.0).reshape(1, 1, 4, 4)      # (F, C, h, w), value 4 * row + col
        >>> sample_features(feats, torch.tensor([[[2.0, 1.0]]]), size=(4, 4)).flatten().tolist()  # cell (1, 2)
        [6.0]
        >>> sample_features(feats, torch.tensor([[[4.5, 2.5]]]), size=(8, 8)).flatten().tolist()  # same cell, 8x8 px
        [6.0]
        >>> sample_features(feats, torch.tensor([[[5.5, 2.5]]]), size=(8, 8)).flatten().tolist()  # half a cell right
        [6.5]
        >>> sample_features(feats, torch.tensor([[[2.0, 1.0]]]), size=(4, 4), radius=1).flatten().tolist()
        [6.0]

    Args:
        feats: ``(F, C, h, w)`` features of the ``F`` frames.
        points: ``(F, N, 2)`` pixel positions ``(x, y)`` on a frame of ``size``, one per frame and point.
        size: ``(W, H)`` of the frame the pixels are of.
        radius: neighbourhood radius in feature cells: the bilinear reads at every integer offset
            ``(dx, dy)`` with ``dx^2 + dy^2 <= radius^2`` are averaged (0: the point alone).
            Reads past the border take the border value.

    Returns:
        ``(F, N, C)``.
    """
    f, _, h, w = feats.shape
    width, height = size
    n = points.shape[1]
    scale = torch.tensor([w / width, h / height], device=points.device, dtype=points.dtype)
    cells = (points + 0.5) * scale - 0.5  # (F, N, 2) on the feature grid
    offsets = _neighbourhood(float(radius), points.device).to(points.dtype)  # (M, 2)
    where = rearrange(cells[:, :, None, :] + offsets, "f n m xy -> f (n m) xy")  # (F, N * M, 2)
    read = _bilinear(feats, where[..., 0], where[..., 1])  # (F, C, N * M)
    return rearrange(read, "f c (n m) -> f n m c", n=n).mean(dim=2)  # (F, N, C)


def _inside(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(F, N)`` bool: the point lies on the frame (pixel edges at ``-0.5`` and ``W - 0.5``)."""
    x, y = points[..., 0], points[..., 1]
    return (x >= -0.5) & (x <= size[0] - 0.5) & (y >= -0.5) & (y <= size[1] - 0.5)


def point_loss(feats: torch.Tensor, points: torch.Tensor, visible: torch.Tensor, size: tuple[int, int],
               radius: float = 0.0) -> torch.Tensor:
    """The point-drag loss (paper Eq. 4): features at the requested points match frame 0's.

    Example:
        >>> base = torch.randn(1, 4, 12, 12)                         # frame 0's features
        >>> feats = torch.cat([base.roll(k, dims=3) for k in range(3)])   # content moving 1 cell/frame right
        >>> path = torch.tensor([[[4.0, 5.0]], [[5.0, 5.0]], [[6.0, 5.0]]])  # (F, N, 2): the same path
        >>> visible = torch.ones(3, 1, dtype=torch.bool)
        >>> float(point_loss(feats, path, visible, size=(12, 12))) < 1e-5
        True
        >>> float(point_loss(feats, path.flip(0), visible, size=(12, 12))) > 0.1   # the wrong way
        True

    Args:
        feats: ``(F, C, h, w)`` features (e.g. DIFT, or any block's output) of the ``F`` frames.
        points: ``(F, N, 2)`` requested pixel positions on a frame of ``size``.
        visible: ``(F, N)`` bool; a point counts at frame ``f`` only where it is visible at both
            frame 0 and frame ``f`` and lies on the frame at both.
        size: ``(W, H)`` of the frame the pixels are of.
        radius: neighbourhood radius in feature cells (``sample_features``).

    Returns:
        Scalar: the mean over counted (frame >= 1, point) pairs of the L2 distance between
        ``D_f(p_f)`` and ``sg(D_0(p_0))`` (Eq. 4 sums; the mean keeps the weight independent of
        ``F`` and ``N``); 0 when nothing counts. Frame 0's features get no gradient.
    """
    ref = sample_features(feats[:1].detach(), points[:1], size, radius)  # (1, N, C), stop-gradient
    cur = sample_features(feats[1:], points[1:], size, radius)  # (F - 1, N, C)
    dist = (cur - ref).pow(2).sum(dim=-1).add(1e-12).sqrt()  # (F - 1, N)
    inside = _inside(points, size)  # (F, N)
    counted = (visible[1:] & visible[:1] & inside[1:] & inside[:1]).to(dist.dtype)  # (F - 1, N)
    return (dist * counted).sum() / counted.sum().clamp_min(1.0)


def rescale_step(index: int, steps: int, of: int = PAPER_STEPS) -> int:
    """Step ``index`` of an ``of``-step schedule moved to a ``steps``-step one: the same share, rounded half up.

    Example:
        >>> rescale_step(19, 50), rescale_step(16, 10)
        (38, 6)
    """
    return math.floor(index * steps / of + 0.5)


def paper_schedule(num_steps: int) -> list[tuple[str, ...]]:
    """Which losses run at each sampling step, after the paper's Eq. 9.

    Example:
        >>> s = paper_schedule(25)
        >>> [s.count(k) for k in [("moft",), ("moft", "point"), ("point",), ()]]
        [6, 1, 13, 5]
        >>> [paper_schedule(50).count(k) for k in [("moft",), ("moft", "point"), ("point",), ()]]
        [12, 2, 26, 10]

    Eq. 9, ``L_t = w_c L_c + w_p L_p``, with ``t1 = 19``, ``t2 = 18``, ``t3 = 5`` of 25 steps:
    ``t >= 19`` MOFT only, ``19 > t >= 18`` both, ``18 > t >= 5`` the point loss only, ``t < 5``
    none. ``t`` counts down over the steps (``t = S - 1 - i`` at step index ``i``; DDIM's 25
    timesteps ``960, 920, ..., 0`` are ``40 t``), so the MOFT loss acts first (inferred; the paper's
    Fig. 6 has MOFT informative earlier than DIFT). Other step counts scale the thresholds:
    ``t_k * S / 25``, rounded half up. The weights are not given in the paper.

    Args:
        num_steps: sampling steps ``S >= 1``.

    Returns:
        ``S`` tuples, in step order, each ``()``, ``("moft",)``, ``("point",)`` or ``("moft", "point")``.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    t1, t2, t3 = (rescale_step(t, num_steps) for t in PAPER_THRESHOLDS)
    out = []
    for i in range(num_steps):
        t = num_steps - 1 - i
        out.append(tuple(name for name, on in (("moft", t >= t2), ("point", t3 <= t < t1)) if on))
    return out


def point_schedule(mode: str, num_steps: int, moft_steps: tuple[int, int]) -> list[tuple[str, ...]]:
    """The losses of each sampling step for a ``GuidanceConfig.points`` mode.

    Example:
        >>> point_schedule("off", 6, (1, 3))                     # today's guidance: MOFT at steps 1, 2
        [(), ('moft',), ('moft',), (), (), ()]
        >>> point_schedule("dift", 25, (3, 12)) == [("point",) if "point" in s else () for s in paper_schedule(25)]
        True

    Args:
        mode: ``"off"`` (the MOFT loss at ``moft_steps``, points unused), ``"paper"``
            (``paper_schedule``: MOFT, both, the point loss, nothing) or ``"dift"`` (the point loss
            alone at the paper's point steps: the paper's "DIFT" row).
        num_steps: sampling steps.
        moft_steps: ``(start, end)`` of the MOFT-only schedule (``GuidanceConfig.steps``).
    """
    if mode not in POINT_MODES:
        raise ValueError(f"points must be one of {', '.join(POINT_MODES)}, got {mode!r}")
    if mode == "off":
        return [("moft",) if moft_steps[0] <= i < moft_steps[1] else () for i in range(num_steps)]
    paper = paper_schedule(num_steps)
    return paper if mode == "paper" else [("point",) if "point" in s else () for s in paper]


@dataclass(frozen=True, eq=False)
class PointRequest:
    """Requested point paths at the latent frames, what guidance reads the point loss at.

    Attributes:
        points: ``(F', N, 2)`` pixels of a ``size`` frame at each latent frame (may leave the frame).
        visible: ``(F', N)`` bool.
        size: ``(W, H)`` of the video frame.
    """

    points: torch.Tensor
    visible: torch.Tensor
    size: tuple[int, int]


def point_request(points: np.ndarray, visible: np.ndarray, size: tuple[int, int], time_grid: list[int]) -> PointRequest:
    """Tracks ``(N, F, 2)`` pixels of the video's frames -> a ``PointRequest`` at its latent frames.

    Example:
        >>> pts = np.stack([np.arange(9.0), np.zeros(9)], axis=-1)[None]   # (1, 9, 2): x = frame index
        >>> req = point_request(pts, np.ones((1, 9), bool), (32, 32), [0, 4, 8])   # Wan: frames 0, 4, 8
        >>> req.points[:, 0, 0].tolist(), tuple(req.visible.shape)
        ([0.0, 4.0, 8.0], (3, 1))

    Args:
        points: ``(N, F, 2)`` requested pixel positions per video frame (``moft.io.tracks.Tracks.points``).
        visible: ``(N, F)`` bool.
        size: ``(W, H)`` of the video frame.
        time_grid: the video frame each latent frame stands for (``moft.models.pipeline.latent_time_grid``).
    """
    pts = torch.as_tensor(np.asarray(points)[:, time_grid], dtype=torch.float32)  # (N, F', 2)
    vis = torch.as_tensor(np.asarray(visible)[:, time_grid], dtype=torch.bool)  # (N, F')
    return PointRequest(rearrange(pts, "n f xy -> f n xy"), rearrange(vis, "n f -> f n"), tuple(size))


def point_gradient_mask(request: PointRequest, grid: tuple[int, int], radius: float) -> torch.Tensor:
    """Where the point loss may move the latents: per frame, disks at the point's frame-0 and current position.

    Example:
        >>> req = PointRequest(torch.tensor([[[4.5, 4.5]], [[20.5, 4.5]]]), torch.ones(2, 1, dtype=torch.bool), (32, 32))
        >>> m = point_gradient_mask(req, (16, 16), radius=1.0)        # (1, F', 1, h, w)
        >>> m.shape, int(m[0, 0, 0].sum()), int(m[0, 1, 0].sum())     # cells 2 and 10 of row 2: frame 1 has both
        (torch.Size([1, 2, 1, 16, 16]), 5, 10)

    Args:
        request: the points.
        grid: ``(h, w)`` latent grid.
        radius: disk radius in latent cells.

    Returns:
        ``(1, F', 1, h, w)`` float 0/1 (a frame whose points are all invisible gets nothing).
    """
    h, w = grid
    width, height = request.size
    cells = (request.points + 0.5) * torch.tensor([w / width, h / height]) - 0.5  # (F', N, 2)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")

    def disks(at: torch.Tensor, on: torch.Tensor) -> torch.Tensor:  # (F', N, 2), (F', N) -> (F', h, w)
        d2 = (xs - at[..., 0, None, None]) ** 2 + (ys - at[..., 1, None, None]) ** 2  # (F', N, h, w)
        return ((d2 <= radius**2) & on[..., None, None]).any(dim=1)

    on = request.visible & request.visible[:1]  # (F', N)
    mask = disks(cells, on) | disks(cells[:1].expand_as(cells), on)  # (F', h, w)
    return mask.float()[None, :, None]

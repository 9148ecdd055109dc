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

import torch
from einops import rearrange

__all__ = ["paper_schedule", "point_loss", "sample_features"]

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
    t1, t2, t3 = (math.floor(t * num_steps / PAPER_STEPS + 0.5) for t in PAPER_THRESHOLDS)
    out = []
    for i in range(num_steps):
        t = num_steps - 1 - i
        out.append(tuple(name for name, on in (("moft", t >= t2), ("point", t3 <= t < t1)) if on))
    return out

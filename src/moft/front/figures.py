"""Figures: the paper's interpretation figures (PCA of MOFT by motion direction, Fig. 2; cosine maps from a
point on the moving object, Figs. 1, 4), and the evaluation report's bars.

Example:
    >>> from moft.front.figures import extraction_figure
    >>> extraction_figure(ex, "features.png")          # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import reduce

from ..eval.metrics import flow_tracks, optical_flow
from ..io.outputs import atomic_write_bytes
from ..io.video import to_float
from ..method.features import cosine_map
from .preview import THRESHOLD, foreground


def _figure(figsize=None):
    """A figure with constrained layout (titles, legends and colour bars never overlap), no pyplot state."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _subplots(nrows: int = 1, ncols: int = 1, figsize=None):
    """A figure and its axes through matplotlib's object-oriented API (no pyplot state, no backend switch)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def _save(fig, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG, atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(Path(path), buf.getvalue())


DIRECTIONS = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")  # x right, y down
STILL = 0.25  # px per frame: slower flow reads as still


def _moving_pieces(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of frame 0's objects and how much each piece changes: the mean RGB distance of its frame-0
    pixels to the same pixels in the later frames. Pieces: those that stand out (``preview.foreground``),
    else, if none of them changes, those that move."""
    frames = to_float(np.asarray(frames)).astype(np.float32)  # (F, H, W, 3)
    change = np.linalg.norm(frames[1:] - frames[:1], axis=-1).mean(0)  # (H, W)
    for fg in foreground(frames):
        count, labels = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
        score = np.bincount(labels.ravel(), change.ravel(), minlength=count) / np.maximum(
            np.bincount(labels.ravel(), minlength=count), 1)
        score[0] = -1.0  # label 0 is the ground
        if score.max() > THRESHOLD / 3:
            break
    return labels, score


def probe_point(frames: np.ndarray, grid: tuple[int, int]) -> tuple[int, int]:
    """A point on the moving object, ``(row, col)`` on a ``grid = (h, w)`` feature grid over the frames.

    Example:
        >>> video = np.zeros((4, 32, 32, 3), np.float32)
        >>> video[:, 2:8, 20:26] = (0.0, 0.0, 1.0)                              # a still blue square
        >>> for k in range(4):
        ...     video[k, 20:26, 4 + 2 * k:10 + 2 * k] = 1.0                    # a white square moving right
        >>> probe_point(video, (16, 16))
        (11, 3)

    The object is found in frame 0 (``moft.front.preview.foreground``: it stands out, else it moves); of its
    pieces, the one that changes most over the frames (mean colour distance of its frame-0 pixels to the
    same pixels later) is probed at its pixel nearest its centroid. With no piece that changes: the centre.
    """
    frames = np.asarray(frames)
    height, width = frames.shape[1:3]
    labels, score = _moving_pieces(frames)
    if score.max() > THRESHOLD / 3:
        ys, xs = np.nonzero(labels == int(np.argmax(score)))
        i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        y, x = ys[i], xs[i]
    else:
        y, x = height // 2, width // 2
    return int(y * grid[0] // height), int(x * grid[1] // width)


def _direction_labels(flow: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(F-1, H, W, 2) flow -> (F-1, h, w) index into DIRECTIONS, or len(DIRECTIONS) for still."""
    h, w = grid
    v = reduce(flow, "f (h a) (w b) c -> f h w c", "mean", h=h, w=w)  # (F-1, h, w, 2) per grid cell
    angle = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360  # 0 = right, 90 = down
    label = np.round(angle / 45).astype(int) % 8
    return np.where(np.linalg.norm(v, axis=-1) < STILL, len(DIRECTIONS), label)


def extraction_figure(ex, path: str | Path, point: tuple[int, int] | None = None, maps: int = 4) -> Path:
    """The paper's interpretation figures for one video, as ``moft extract --figure`` writes them.

    Panels: (a) frame 0 with arrows of the measured motion (net displacement of flow tracks from a grid);
    (b) PCA of every MOFT vector (frames 0..F-2, each position), coloured by the direction the content
    moves there at that frame (as in the paper's Fig. 2, with a legend). Motion is dense optical flow
    (``moft.eval.metrics``: Farneback under 64 px, where DIS's 8-px patches miss most of it; DIS above); (c) cosine
    similarity of the MOFT at a point on the moving object in frame 0 (``probe_point``, marked x) to every
    position of later frames (the paper's Figs. 1, 4), drawn over those frames, with each map's peak
    marked o.

    Args:
        ex: an ``Extraction``.
        path: PNG to write (atomically).
        point: ``(row, col)`` on the MOFT grid; default: ``probe_point``.
        maps: how many later frames get a similarity map.
    """
    import matplotlib
    from sklearn.decomposition import PCA

    m = ex.moft.float()  # (F, d, h, w)
    f, d, h, w = m.shape
    frames = to_float(np.asarray(ex.frames))  # (F, H, W, 3)
    height, width = frames.shape[1:3]
    method = "farneback" if min(height, width) < 64 else "dis"  # DIS's 8-px patches miss most motion on tiny frames
    flow = optical_flow(frames, method=method)  # (F-1, H, W, 2)
    point = point or probe_point(frames, (h, w))
    fig = _figure(figsize=(12, 6.6))
    later = sorted(set(np.linspace(1, f - 1, min(maps, f - 1)).round().astype(int).tolist()))
    n = max(4, len(later))
    axes = fig.subplot_mosaic([["frame"] * (n // 2) + ["pca"] * (n - n // 2),
                               [f"sim{k}" for k in later] + ["."] * (n - len(later))], height_ratios=[1.25, 1])

    ax = axes["frame"]
    ax.imshow(frames[0])
    tracks = flow_tracks(frames, method=method, spacing=max(2, width // 12), max_points=200)  # (N, F, 2)
    net = tracks[:, -1] - tracks[:, 0]
    ok = np.all(np.isfinite(net), axis=1) & (np.linalg.norm(np.nan_to_num(net), axis=1) > STILL * (f - 1))
    ax.quiver(tracks[ok, 0, 0], tracks[ok, 0, 1], net[ok, 0], net[ok, 1], color="cyan", angles="xy",
              scale_units="xy", scale=1, width=0.006)
    ax.set_title(f"(a) frame 0: motion to frame {f - 1} (arrows), probe (x)")

    ax = axes["pca"]
    vecs = m[: f - 1].permute(0, 2, 3, 1).reshape(-1, d).numpy()  # ((F-1)*h*w, d)
    proj = PCA(n_components=2).fit_transform(vecs) if d >= 2 else np.concatenate([vecs, vecs * 0], 1)
    labels = _direction_labels(flow, (h, w)).reshape(-1)  # ((F-1)*h*w,)
    cmap = matplotlib.colormaps["hsv"]
    for k, name in enumerate(DIRECTIONS + ("still",)):
        sel = labels == k
        if sel.any():
            colour = "lightgrey" if name == "still" else cmap(k / len(DIRECTIONS))
            ax.scatter(proj[sel, 0], proj[sel, 1], s=5 if name == "still" else 9, color=colour,
                       label=f"{name} ({int(sel.sum())})", zorder=1 if name == "still" else 2)
    ax.legend(title="content moves", fontsize=7, title_fontsize=8, markerscale=2, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"(b) PCA of MOFT ({d} channels) by motion direction")
    ax.set_xlabel("PC 1"), ax.set_ylabel("PC 2")

    sim = cosine_map(m, point).numpy()  # (F, h, w)
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    row, col = point
    to_px = lambda r, c: ((c + 0.5) * width / w - 0.5, (r + 0.5) * height / h - 0.5)  # noqa: E731
    axes["frame"].plot(*to_px(row, col), "x", color="white", ms=10, mew=2)
    im = None
    for k in later:
        ax = axes[f"sim{k}"]
        ax.imshow(frames[k], extent=extent)
        im = ax.imshow(sim[k], cmap="jet", vmin=-1, vmax=1, alpha=0.55, extent=extent, interpolation="bilinear")
        peak = np.unravel_index(int(np.argmax(sim[k])), (h, w))
        ax.plot(*to_px(*peak), "o", mfc="none", mec="white", ms=9, mew=2)
        ax.set_title(f"(c) frame {k}")
    fig.colorbar(im, ax=[axes[f"sim{k}"] for k in later], label="cosine similarity to x", shrink=0.9)
    for name, ax in axes.items():
        if name != "pca":
            ax.set_xticks([]), ax.set_yticks([])
    return _save(fig, path)


def pca_direction_figure(vectors: dict[str, torch.Tensor | np.ndarray], path: str | Path, title: str = "") -> Path:
    """Scatter of 2-D PCA of feature vectors grouped by label (paper Fig. 2).

    Args:
        vectors: ``{label: (N, d)}``.
        path: PNG to write.
        title: figure title.
    """
    from sklearn.decomposition import PCA

    labels = list(vectors)
    data = np.concatenate([np.asarray(vectors[k], dtype=np.float64) for k in labels])
    proj = PCA(n_components=2).fit_transform(data)
    fig, ax = _subplots(figsize=(5, 4.5))
    start = 0
    for k in labels:
        n = len(vectors[k])
        ax.scatter(proj[start:start + n, 0], proj[start:start + n, 1], s=8, label=k)
        start += n
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def report_figure(table: list[dict], path: str | Path, title: str = "") -> Path:
    """Bar charts of direction success and Motion Fidelity (LK) per setting of an evaluation report."""
    names = [t["setting"] for t in table]
    fig, axes = _subplots(1, 2, figsize=(max(6, 1.1 * len(names) + 2), 3.6))
    success = "direction_success" if any(t.get("direction_success") is not None for t in table) else "direction_success_lk"
    for ax, key, label in ((axes[0], success, success.replace("_lk", " (LK)").replace("_", " ")),
                           (axes[1], "motion_fidelity_lk", "Motion Fidelity (LK)")):
        vals = [t.get(key) if t.get(key) is not None else 0.0 for t in table]
        ax.bar(range(len(names)), vals, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)

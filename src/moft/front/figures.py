"""Figures: PCA projection of MOFT vectors and the motion-correspondence heatmap (paper Figs. 1-2, 4).

Example:
    >>> from moft.front.figures import extraction_figure
    >>> extraction_figure(ex, "features.png")          # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ..io.outputs import atomic_write_bytes
from ..method.features import cosine_map


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


def extraction_figure(ex, path: str | Path, point: tuple[int, int] | None = None) -> Path:
    """Three panels: frame 0, PCA of every position's MOFT vector coloured by frame, and the cosine
    similarity of one point's MOFT (frame 0) to every position of the last frame.

    Args:
        ex: an ``Extraction``.
        path: PNG to write (atomically).
        point: ``(row, col)`` on the MOFT grid; default: the centre.
    """
    from sklearn.decomposition import PCA

    m = ex.moft  # (F, d, h, w)
    f, d, h, w = m.shape
    point = point or (h // 2, w // 2)
    vecs = m.permute(0, 2, 3, 1).reshape(-1, d).numpy()  # (F*h*w, d)
    proj = PCA(n_components=2).fit_transform(vecs) if d >= 2 else np.concatenate([vecs, vecs * 0], 1)
    sim = cosine_map(m, point).numpy()  # (F, h, w)
    fig, axes = _subplots(1, 3, figsize=(11, 3.6))
    axes[0].imshow(ex.frames[0])
    axes[0].set_title("frame 0")
    sc = axes[1].scatter(proj[:, 0], proj[:, 1], c=np.repeat(np.arange(f), h * w), s=4, cmap="viridis")
    fig.colorbar(sc, ax=axes[1], label="frame")
    axes[1].set_title(f"PCA of MOFT vectors ({d} channels)")
    im = axes[2].imshow(sim[-1], cmap="magma", vmin=-1, vmax=1)
    axes[2].scatter([point[1]], [point[0]], c="cyan", marker="x")
    fig.colorbar(im, ax=axes[2])
    axes[2].set_title(f"cosine to point {point} of frame 0, frame {f - 1}")
    for a in (axes[0], axes[2]):
        a.set_xticks([]), a.set_yticks([])
    fig.tight_layout()
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

"""`moft extract --figure`: the paper's interpretation figures, readable: the probe sits on the moving object,
the panels' text does not collide, the PCA is coloured by motion direction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moft.front.extract import Extraction
from moft.front.figures import DIRECTIONS, _direction_labels, extraction_figure, probe_point

H = W = 32


def moving_disk(cx=8.0, cy=20.0, dx=1.5, frames=8, r=4.0):
    yy, xx = np.mgrid[:H, :W]
    rng = np.random.default_rng(0)
    ground = 0.35 + 0.05 * rng.random((H, W, 1)).astype(np.float32)  # faint texture, stays put
    video = np.repeat(np.repeat(ground, 3, -1)[None], frames, 0)
    for k in range(frames):
        video[k, (xx - cx - k * dx) ** 2 + (yy - cy) ** 2 <= r * r] = (0.9, 0.2, 0.1)
    return video


@pytest.mark.parametrize("cx, cy", [(8.0, 20.0), (22.0, 9.0)])
def test_the_probe_point_lies_on_the_planted_moving_object_not_on_a_still_one(cx, cy):
    video = moving_disk(cx, cy)
    yy, xx = np.mgrid[:H, :W]
    video[:, (xx - (W - cx)) ** 2 + (yy - (H - cy)) ** 2 <= 16] = (0.1, 0.3, 0.9)  # a still blue disk elsewhere
    row, col = probe_point(video, (16, 16))
    y, x = (row + 0.5) * 2 - 0.5, (col + 0.5) * 2 - 0.5  # grid cell centre in pixels
    assert np.hypot(x - cx, y - cy) <= 4.0  # on the moving disk of radius 4 in frame 0


def test_directions_are_read_from_the_flow_in_image_axes():
    flow = np.zeros((1, 4, 4, 2), np.float32)
    flow[0, :2, :, 0] = 1.0  # top half moves right
    flow[0, 2:, :, 1] = -1.0  # bottom half moves up (y down)
    labels = _direction_labels(flow, (2, 2))
    assert [DIRECTIONS[i] for i in labels[0, 0]] == ["right", "right"]
    assert [DIRECTIONS[i] for i in labels[0, 1]] == ["up", "up"]


def _boxes(fig):
    """Window extents of every title, axis label, legend and colour bar of a drawn figure."""
    renderer = fig.canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            if text.get_text():
                boxes.append((f"{ax.get_label() or 'axes'}: {text.get_text()[:30]}", text.get_window_extent(renderer)))
        if ax.get_legend() is not None:
            boxes.append(("legend", ax.get_legend().get_window_extent(renderer)))
        if ax.get_label() == "<colorbar>":
            boxes.append(("colorbar", ax.get_window_extent(renderer)))
    return boxes


def test_the_figure_is_written_and_no_text_box_overlaps_another(tmp_path, monkeypatch):
    import matplotlib.figure

    video = moving_disk()
    ex = Extraction(torch.zeros(8, 4, 16, 16), torch.randn(8, 4, 16, 16, generator=torch.Generator().manual_seed(0)),
                    None, video, {})
    figs = []
    init = matplotlib.figure.Figure.__init__

    def keep(self, *a, **k):
        init(self, *a, **k)
        figs.append(self)

    monkeypatch.setattr(matplotlib.figure.Figure, "__init__", keep)
    path = extraction_figure(ex, tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    (fig,) = figs
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    boxes = _boxes(fig)
    names = [n for n, _ in boxes]
    assert "colorbar" in names and "legend" in names and sum(n.startswith("axes") or ":" in n for n in names) >= 6
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            assert not box_a.overlaps(box_b), (a, b)
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("right") for t in legend)  # the disk moves right: that direction is in the legend

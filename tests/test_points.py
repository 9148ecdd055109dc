"""moft.method.points: the bilinear feature read, the point-drag loss (Eq. 4) and the Eq. 9 schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from moft.method.points import paper_schedule, point_loss, sample_features

torch.set_num_threads(1)


def grid_sample_read(feats, points, size):
    """The reference: torch's bilinear sampler, pixel centres at integers -> normalised [-1, 1]."""
    scale = torch.tensor(size, dtype=points.dtype)
    grid = (2 * (points + 0.5) / scale - 1)[:, :, None, :]  # (F, N, 1, 2)
    out = F.grid_sample(feats, grid, mode="bilinear", padding_mode="border", align_corners=False)  # (F, C, N, 1)
    return out[..., 0].transpose(1, 2)  # (F, N, C)


@pytest.mark.parametrize("size", [(16, 12), (64, 48), (40, 70)])
def test_bilinear_read_equals_grid_sample(size):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 5, 12, 16, generator=g, dtype=torch.float64)  # (F, C, h, w)
    w, h = size
    points = torch.rand(3, 40, 2, generator=g, dtype=torch.float64) * torch.tensor([w + 4.0, h + 4.0]) - 2  # past edges
    torch.testing.assert_close(sample_features(feats, points, size), grid_sample_read(feats, points, size))


def test_exact_at_integer_points_and_cell_centres():
    feats = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    pts = torch.stack([xs.flatten(), ys.flatten()], -1).expand(2, -1, -1).to(torch.float64)  # (F, 48, 2)
    read = sample_features(feats, pts, size=(8, 6))  # frame = grid: pixel (x, y) is cell (y, x)
    torch.testing.assert_close(read, feats.flatten(2).transpose(1, 2), rtol=0, atol=0)
    centres = (pts + 0.5) * 4 - 0.5  # on a 4x larger frame, cell (y, x) has its centre at pixel 4x + 1.5
    torch.testing.assert_close(sample_features(feats, centres, size=(32, 24)), read, rtol=0, atol=1e-12)


def test_neighbourhood_is_the_mean_of_the_disk():
    feats = torch.randn(1, 2, 7, 7, dtype=torch.float64)
    read = sample_features(feats, torch.tensor([[[3.0, 3.0]]], dtype=torch.float64), size=(7, 7), radius=1)
    cells = feats[0, :, [3, 2, 4, 3, 3], [3, 3, 3, 2, 4]]  # centre and its 4 neighbours: (C, 5)
    torch.testing.assert_close(read[0, 0], cells.mean(1))
    disk = sample_features(feats, torch.tensor([[[3.0, 3.0]]], dtype=torch.float64), size=(7, 7), radius=1.5)
    torch.testing.assert_close(disk[0, 0], feats[0, :, 2:5, 2:5].mean((1, 2)))  # 1.5: the 3x3 square


def planted(frames=5, cells=(1, 0)):
    """Frame 0's features translated by ``cells`` per frame (whole cells, no wrap where the points read)."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(1, 6, 16, 16, generator=g, dtype=torch.float64)
    feats = torch.cat([base.roll((f * cells[1], f * cells[0]), dims=(2, 3)) for f in range(frames)])
    return feats


def test_loss_is_zero_along_the_planted_path_and_positive_off_it():
    feats = planted()
    size = (32, 32)  # 2 px per cell
    start = torch.tensor([[6.3, 9.7], [12.0, 20.25]], dtype=torch.float64)  # (N, 2) px, sub-pixel
    f = torch.arange(5, dtype=torch.float64)[:, None, None]
    path = start + f * torch.tensor([2.0, 0.0], dtype=torch.float64)  # (F, N, 2): 1 cell = 2 px per frame
    visible = torch.ones(5, 2, dtype=torch.bool)
    assert float(point_loss(feats, path, visible, size)) < 1e-5
    assert float(point_loss(feats, path, visible, size, radius=1.5)) < 1e-5
    still = start.expand(5, -1, -1)
    assert float(point_loss(feats, still, visible, size)) > 0.5
    wrong = start - f * torch.tensor([2.0, 0.0], dtype=torch.float64)  # the opposite way
    assert float(point_loss(feats, wrong, visible, size)) > 0.5


def test_gradient_reaches_later_frames_only():
    feats = planted().requires_grad_(True)
    start = torch.tensor([[6.3, 9.7]], dtype=torch.float64)
    still = start.expand(5, -1, -1)
    point_loss(feats, still, torch.ones(5, 1, dtype=torch.bool), (32, 32), radius=1).backward()
    assert feats.grad[0].abs().max() == 0  # frame 0 is the detached reference
    assert all(feats.grad[f].abs().max() > 0 for f in range(1, 5))


def test_invisible_and_out_of_frame_points_are_masked():
    feats = planted()
    size = (32, 32)
    f = torch.arange(5, dtype=torch.float64)[:, None, None]
    good = torch.tensor([[6.3, 9.7]], dtype=torch.float64) + f * torch.tensor([2.0, 0.0], dtype=torch.float64)
    bad = torch.tensor([[20.0, 20.0]], dtype=torch.float64).expand(5, -1, -1)  # stays put: wrong
    both = torch.cat([good, bad], dim=1)  # (F, 2, 2)
    visible = torch.ones(5, 2, dtype=torch.bool)
    assert float(point_loss(feats, both, visible, size)) > 0.1
    hidden = visible.clone()
    hidden[1:, 1] = False  # the wrong point hidden at every later frame
    assert float(point_loss(feats, both, hidden, size)) < 1e-5
    hidden0 = visible.clone()
    hidden0[0, 1] = False  # hidden at frame 0: nothing to match, the whole track drops out
    assert float(point_loss(feats, both, hidden0, size)) < 1e-5
    outside = both.clone()
    outside[1:, 1] = torch.tensor([-3.0, 40.0], dtype=torch.float64)  # off the frame: masked, not clamped
    assert float(point_loss(feats, outside, visible, size)) < 1e-5
    edge = both.clone()
    edge[1:, 1] = torch.tensor([31.4, -0.4], dtype=torch.float64)  # still on the frame (edges at -0.5, 31.5)
    assert float(point_loss(feats, edge, visible, size)) > 0.1
    none = torch.zeros(5, 2, dtype=torch.bool)
    feats.requires_grad_(True)
    loss = point_loss(feats, both, none, size)
    loss.backward()
    assert float(loss.detach()) == 0.0 and feats.grad.abs().max() == 0


def test_paper_schedule_25_steps_is_eq9():
    s = paper_schedule(25)
    assert s[:6] == [("moft",)] * 6  # t = 24 .. 19
    assert s[6] == ("moft", "point")  # t = 18
    assert s[7:20] == [("point",)] * 13  # t = 17 .. 5
    assert s[20:] == [()] * 5  # t = 4 .. 0


@pytest.mark.parametrize("steps", [1, 2, 4, 10, 24, 50, 100])
def test_paper_schedule_scales_and_keeps_the_order(steps):
    s = paper_schedule(steps)
    assert len(s) == steps
    order = {("moft",): 0, ("moft", "point"): 1, ("point",): 2, (): 3}
    phases = [order[x] for x in s]
    assert phases == sorted(phases)
    fraction_moft = sum("moft" in x for x in s) / steps
    fraction_none = s.count(()) / steps
    assert abs(fraction_moft - 7 / 25) <= 1 / steps + 1e-9 and abs(fraction_none - 5 / 25) <= 1 / steps + 1e-9
    with pytest.raises(ValueError):
        paper_schedule(0)

"""MOFT operations: content-correlation removal, channel selection, resizing, region means, cosine maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from moft.method.features import cosine_map, moft, region_mean, remove_content_correlation, resize, select_channels


def _rand(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_content_removal_gives_zero_mean_over_frames():
    x = _rand(2, 8, 64, 16, 16)
    assert remove_content_correlation(x).mean(dim=1).abs().max() < 1e-6


def test_content_removal_keeps_frame_differences():
    x = _rand(1, 8, 16, 4, 4)
    y = remove_content_correlation(x)
    torch.testing.assert_close(y[:, 1:] - y[:, :-1], x[:, 1:] - x[:, :-1])


def test_content_removal_removes_a_static_component_entirely():
    static = _rand(1, 1, 4, 5, 5).expand(1, 6, 4, 5, 5)
    assert remove_content_correlation(static).abs().max() < 1e-6


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), f=st.integers(1, 9), c=st.integers(1, 12), h=st.integers(1, 9), w=st.integers(1, 9),
       seed=st.integers(0, 2**16), scale=st.floats(1e-3, 10.0))
def test_content_removal_zero_mean_for_any_shape(b, f, c, h, w, seed, scale):
    x = _rand(b, f, c, h, w, seed=seed) * scale
    y = remove_content_correlation(x)
    assert y.shape == x.shape
    assert y.mean(dim=1).abs().max() < 1e-6 * max(1.0, scale)


def test_select_channels_picks_the_given_indices_in_order():
    x = _rand(1, 4, 10, 3, 3)
    y = select_channels(x, torch.tensor([7, 2, 5]))
    assert y.shape == (1, 4, 3, 3, 3)
    assert torch.equal(y[:, :, 0], x[:, :, 7])
    assert torch.equal(y[:, :, 1], x[:, :, 2])
    assert torch.equal(y[:, :, 2], x[:, :, 5])


def test_select_channels_accepts_a_list():
    x = _rand(1, 4, 10, 3, 3)
    assert torch.equal(select_channels(x, [1, 3]), x[:, :, [1, 3]])


def test_select_channels_none_keeps_all():
    x = _rand(1, 4, 10, 3, 3)
    assert select_channels(x, None) is x


def test_resize_to_a_size_gives_that_size_per_frame():
    x = _rand(2, 3, 4, 8, 8)
    y = resize(x, (16, 12))
    assert y.shape == (2, 3, 4, 16, 12)


def test_resize_is_bilinear_per_frame_without_mixing_frames():
    x = _rand(2, 3, 4, 8, 8)
    y = resize(x, (16, 16))
    expected = F.interpolate(x[1, 2][None], size=(16, 16), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(y[1, 2], expected)


def test_resize_to_the_same_size_is_a_no_op():
    x = _rand(1, 3, 4, 8, 8)
    assert resize(x, (8, 8)) is x


def test_resize_none_is_a_no_op():
    x = _rand(1, 3, 4, 8, 8)
    assert resize(x, None) is x


def test_moft_without_content_removal_equals_resize_then_select():
    x = _rand(1, 8, 16, 8, 8)
    ch = torch.tensor([3, 0, 9])
    assert torch.equal(moft(x, ch, (16, 16), content_removal=False), select_channels(resize(x, (16, 16)), ch))


def test_moft_equals_resize_remove_select():
    x = _rand(1, 8, 16, 8, 8)
    ch = torch.tensor([3, 0, 9])
    expected = select_channels(remove_content_correlation(resize(x, (16, 16))), ch)
    torch.testing.assert_close(moft(x, ch, (16, 16)), expected)


def test_moft_output_shape_is_b_f_d_size():
    assert moft(_rand(2, 8, 64, 16, 16), torch.tensor([3, 7, 11]), size=(32, 32)).shape == (2, 8, 3, 32, 32)


def test_region_mean_with_a_mask_equals_a_manual_mean():
    x = _rand(2, 4, 3, 6, 6)
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[1:4, 2:5] = True
    expected = x[..., 1:4, 2:5].reshape(2, 4, 3, -1).mean(-1)
    torch.testing.assert_close(region_mean(x, mask), expected)


def test_region_mean_weights_a_soft_mask():
    x = _rand(1, 2, 3, 4, 4)
    mask = torch.zeros(4, 4)
    mask[0, 0], mask[3, 3] = 1.0, 3.0
    expected = (x[..., 0, 0] * 1.0 + x[..., 3, 3] * 3.0) / 4.0
    torch.testing.assert_close(region_mean(x, mask), expected)


def test_region_mean_of_an_empty_mask_is_finite():
    out = region_mean(_rand(1, 2, 3, 4, 4), torch.zeros(4, 4, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_cosine_map_is_one_at_the_source_point_of_the_source_frame():
    x = _rand(6, 5, 7, 9)
    sim = cosine_map(x, (3, 4), frame=2)
    assert sim.shape == (6, 7, 9)
    assert abs(float(sim[2, 3, 4]) - 1.0) < 1e-6


def test_cosine_map_is_within_minus_one_and_one():
    sim = cosine_map(_rand(6, 5, 7, 9, seed=3), (0, 0))
    assert float(sim.min()) >= -1.0 - 1e-6
    assert float(sim.max()) <= 1.0 + 1e-6


def test_cosine_map_is_minus_one_where_the_feature_is_opposite():
    x = _rand(2, 4, 3, 3)
    x[1, :, 2, 2] = -2.0 * x[0, :, 1, 1]
    assert abs(float(cosine_map(x, (1, 1), frame=0)[1, 2, 2]) + 1.0) < 1e-6

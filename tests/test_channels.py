"""Motion channels: fitting on synthetic pans, the channel file, loading checks, the pans themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from moft.method.channels import ChannelsError, MotionChannels, fit_channels, pan_videos, separation
from moft.eval.metrics import track_points

pytestmark = pytest.mark.usefixtures("single_thread")

C = 64  # channels of the tiny AnimateDiff's up_blocks.1
K = round(0.04 * C)  # 3


@pytest.fixture(scope="module")
def saved(tiny_channels, tmp_path_factory):
    path = tmp_path_factory.mktemp("channels") / "motion.safetensors"
    tiny_channels.save(path)
    return path


@pytest.fixture(scope="module")
def pans():
    return list(pan_videos(size=(32, 32), num_frames=8, speed=0.04, scenes=2, seed=0))


# ---------------------------------------------------------------------------
# fit_channels
# ---------------------------------------------------------------------------


def test_fit_keeps_four_percent_per_axis(tiny_channels):
    assert tiny_channels.horizontal.shape == (K,)
    assert tiny_channels.vertical.shape == (K,)


def test_fitted_indices_are_distinct_valid_channels(tiny_channels):
    for idx in (tiny_channels.horizontal, tiny_channels.vertical):
        assert idx.dtype == torch.long
        assert int(idx.min()) >= 0 and int(idx.max()) < C
        assert len(set(idx.tolist())) == K


def test_fitted_indices_are_ranked_by_absolute_pc1_loading(tiny_channels):
    for axis in ("horizontal", "vertical"):
        loading = tiny_channels.loadings[axis]
        assert loading.shape == (C,)
        ranked = getattr(tiny_channels, axis)
        assert torch.equal(ranked, loading.abs().argsort(descending=True)[:K])


def test_fit_response_is_one_row_per_channel(tiny_channels):
    assert tiny_channels.response.shape == (C, 2)
    assert tiny_channels.response_r2.shape == (C,)
    assert tiny_channels.num_channels == C


def test_fit_records_site_timestep_and_explained_variance(tiny_channels):
    meta = tiny_channels.meta
    assert meta["site"] == "up_blocks.1"
    assert meta["method"] == "noise"
    assert meta["num_channels"] == C and meta["k"] == K
    assert isinstance(meta["timestep"], int) and 0 <= meta["timestep"] < 1000
    for axis in ("horizontal", "vertical"):
        ratios = meta["explained_variance_ratio"][axis]
        assert len(ratios) >= 1
        assert all(0.0 <= r <= 1.0 for r in ratios)
        assert ratios == sorted(ratios, reverse=True)
        assert sum(ratios) <= 1.0 + 1e-6


def test_fit_records_one_source_per_pan(tiny_channels):
    assert len(tiny_channels.meta["source_videos"]) == 4  # scenes=1: left, right, up, down


def test_indices_are_the_union_without_repeats(tiny_channels):
    idx = tiny_channels.indices.tolist()
    assert len(idx) == len(set(idx))
    assert set(idx) == set(tiny_channels.horizontal.tolist()) | set(tiny_channels.vertical.tolist())


def test_fit_rejects_an_unknown_method(animatediff):
    with pytest.raises(ValueError, match="method"):
        fit_channels(animatediff, method="magic")


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_fit_rejects_a_fraction_outside_zero_one(animatediff, fraction):
    with pytest.raises(ValueError, match="fraction"):
        fit_channels(animatediff, method="noise", fraction=fraction)


def test_fit_rejects_an_unknown_rank(animatediff):
    with pytest.raises(ValueError, match="rank"):
        fit_channels(animatediff, method="noise", rank="vibes")


def test_separation_ranking_keeps_the_channels_with_the_largest_d_prime(animatediff):
    ch = fit_channels(animatediff, method="noise", scenes=2, rank="separation", num_steps=5)
    assert ch.meta["rank"] == "separation"
    for axis in ("horizontal", "vertical"):
        d = ch.loadings[axis]
        assert d.shape == (C,) and torch.isfinite(d).all()
        assert torch.equal(getattr(ch, axis), d.abs().argsort(descending=True)[:K])


def test_separation_finds_the_one_channel_that_tells_the_groups_apart():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=gen)
    labels = torch.tensor([1.0, -1.0]).repeat(20)
    x[:, 4] += 3 * labels
    d = separation(x, labels)
    assert int(d.abs().argmax()) == 4 and d[4] > 0


def test_separation_needs_two_samples_per_group():
    with pytest.raises(ValueError, match="two samples"):
        separation(torch.zeros(3, 2), torch.tensor([1.0, 1.0, -1.0]))


# ---------------------------------------------------------------------------
# top
# ---------------------------------------------------------------------------


def test_top_is_the_union_of_each_axis_top_k(tiny_channels):
    k = round(0.1 * C)
    got = set(tiny_channels.top(0.1).tolist())
    h = set(tiny_channels.loadings["horizontal"].abs().argsort(descending=True)[:k].tolist())
    v = set(tiny_channels.loadings["vertical"].abs().argsort(descending=True)[:k].tolist())
    assert got == h | v
    assert k <= len(got) <= 2 * k


def test_top_of_everything_is_every_channel(tiny_channels):
    assert sorted(tiny_channels.top(1.0).tolist()) == list(range(C))


def test_top_of_a_tiny_fraction_keeps_at_least_one_per_axis(tiny_channels):
    assert 1 <= len(tiny_channels.top(1e-4)) <= 2


# ---------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------


def test_save_load_round_trip_keeps_tensors(tiny_channels, saved):
    loaded = MotionChannels.load(saved)
    for name, tensor in tiny_channels.tensors().items():
        assert torch.equal(loaded.tensors()[name], tensor), name


def test_save_load_round_trip_keeps_metadata(tiny_channels, saved):
    assert MotionChannels.load(saved).meta == json.loads(json.dumps(tiny_channels.meta))


def test_save_load_round_trip_keeps_digest(tiny_channels, saved):
    assert MotionChannels.load(saved).digest() == tiny_channels.digest()


def test_save_writes_a_json_sidecar_with_the_metadata(tiny_channels, saved):
    sidecar = saved.with_suffix(".json")
    assert sidecar.is_file()
    assert json.loads(sidecar.read_text()) == json.loads(json.dumps(tiny_channels.meta))


def test_load_with_the_right_channel_count_passes(saved):
    assert MotionChannels.load(saved, expect_channels=C).num_channels == C


def test_load_with_the_wrong_channel_count_names_both_counts(saved):
    with pytest.raises(ChannelsError) as info:
        MotionChannels.load(saved, expect_channels=1280)
    message = str(info.value)
    assert "\n" not in message
    assert "64" in message and "1280" in message


def test_load_a_missing_file_raises_channels_error(tmp_path):
    with pytest.raises(ChannelsError, match="no such"):
        MotionChannels.load(tmp_path / "absent.safetensors")


def test_load_a_non_safetensors_file_raises_channels_error(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_text("this is not a safetensors file\n")
    with pytest.raises(ChannelsError, match="not a moft channel file"):
        MotionChannels.load(path)


def test_load_a_safetensors_file_without_channel_data_raises_channels_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    with pytest.raises(ChannelsError):
        MotionChannels.load(path)


def test_load_a_malformed_response_raises_channels_error(tiny_channels, tmp_path):
    path = tmp_path / "bad.safetensors"
    tiny_channels.save(path)
    tensors = load_file(str(path))
    tensors["response"] = torch.zeros(C, 3)
    save_file(tensors, str(path), metadata={"moft_channels": json.dumps(tiny_channels.meta)})
    with pytest.raises(ChannelsError, match="response"):
        MotionChannels.load(path)


# ---------------------------------------------------------------------------
# pan videos
# ---------------------------------------------------------------------------


def test_pan_videos_yield_two_pans_per_scene_and_axis(pans):
    axes = [axis for _, _, axis in pans]
    assert axes.count("horizontal") == 4 and axes.count("vertical") == 4


def test_pan_videos_have_the_requested_shape_as_uint8(pans):
    for frames, _, _ in pans:
        assert frames.shape == (8, 32, 32, 3)
        assert frames.dtype == np.uint8


def test_pan_videos_of_a_non_square_size():
    frames, _, _ = next(pan_videos(size=(16, 24), num_frames=5, speed=0.04, scenes=1, seed=0))
    assert frames.shape == (5, 16, 24, 3)


def test_pan_directions_lie_on_their_axis(pans):
    for _, d, axis in pans:
        along = 0 if axis == "horizontal" else 1
        assert abs(d[along]) == 1.0 and d[1 - along] == 0.0


def test_each_scene_is_panned_both_ways(pans):
    dirs = {(axis, tuple(d)) for _, d, axis in pans}
    assert dirs == {("horizontal", (-1.0, 0.0)), ("horizontal", (1.0, 0.0)),
                    ("vertical", (0.0, -1.0)), ("vertical", (0.0, 1.0))}


def _mean_displacement(frames: np.ndarray) -> np.ndarray:
    """Mean (dx, dy) per frame of LK-tracked corners."""
    tracks = track_points(frames)
    return np.nanmean(np.diff(tracks, axis=1), axis=(0, 1))


@pytest.mark.parametrize("axis", ["horizontal", "vertical"])
def test_pans_move_the_content_in_their_direction(pans, axis):
    speed_px = 0.04 * 32
    for frames, d, ax in pans:
        if ax != axis:
            continue
        disp = _mean_displacement(frames)
        along = 0 if axis == "horizontal" else 1
        assert np.sign(disp[along]) == np.sign(d[along])
        assert abs(disp[along]) == pytest.approx(speed_px, rel=0.25)
        assert abs(disp[1 - along]) < 0.25 * speed_px


def test_pans_of_a_white_picture_stay_white_under_the_noise():
    """The per-frame noise is clipped to the uint8 range, never wrapped (a white pixel stays white)."""
    white = np.full((40, 40, 3), 255, np.uint8)
    for frames, _, _ in pan_videos(size=(32, 32), num_frames=8, speed=0.04, scenes=1, seed=0, images=[white]):
        assert frames.dtype == np.uint8 and frames.min() > 240


def test_fit_reports_progress_once_per_pan_video(animatediff):
    calls = []
    fit_channels(animatediff, method="noise", scenes=1, seed=0, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(n, 4) for n in range(1, 5)]  # 1 scene x 2 axes x 2 directions


def test_save_writes_strict_json_metadata_when_a_figure_is_not_finite(tiny_channels, tmp_path):
    import dataclasses

    odd = dataclasses.replace(tiny_channels, meta=dict(tiny_channels.meta, explained_variance_ratio=float("nan")))
    path = odd.save(tmp_path / "odd.safetensors")

    def refuse(token):
        raise AssertionError(f"non-strict JSON constant {token}")

    sidecar = json.loads(path.with_suffix(".json").read_text(), parse_constant=refuse)
    assert sidecar["explained_variance_ratio"] is None and sidecar["null_because"] == {"explained_variance_ratio": "nan"}
    assert MotionChannels.load(path).meta == sidecar


def test_save_writes_both_files_or_neither(tiny_channels, tmp_path, monkeypatch):
    from pathlib import Path

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", broken)  # the sidecar fails after the tensors were staged
    with pytest.raises(OSError, match="disk full"):
        tiny_channels.save(tmp_path / "ch.safetensors")
    assert list(tmp_path.iterdir()) == []


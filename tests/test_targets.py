"""Targets: synthesized curves follow the fitted response; reference targets; save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moft.method.targets import Target, TargetError, reference_target, synthesize_target
from moft.io.trajectory import TrajectoryError, parse_trajectory

from conftest import FRAMES


def _traj(motion: dict, mask=None):
    region = {"mask": mask or {"box": [0.25, 0.25, 0.75, 0.75]}, **motion}
    return parse_trajectory({"version": 1, "frames": FRAMES, "regions": [region]})


def test_synthesized_curve_is_response_times_centred_displacement(tiny_channels):
    traj = _traj({"direction": "right", "speed": 0.05})
    t = synthesize_target(traj, tiny_channels, latent_size=(16, 16))
    idx = tiny_channels.indices
    disp = torch.from_numpy(np.asarray(traj.regions[0].path, dtype=np.float32))
    disp = disp - disp.mean(0)
    expected = tiny_channels.baseline[:, idx] + disp @ tiny_channels.response[idx].T
    assert torch.allclose(t.curves[0], expected, atol=1e-6)
    assert torch.allclose(t.curves.mean(1), torch.zeros_like(t.curves.mean(1)), atol=1e-6)  # CR-consistent


def test_opposite_directions_are_symmetric_about_the_baseline(tiny_channels):
    right = synthesize_target(_traj({"direction": "right"}), tiny_channels, latent_size=(16, 16))
    left = synthesize_target(_traj({"direction": "left"}), tiny_channels, latent_size=(16, 16))
    base = tiny_channels.baseline[:, tiny_channels.indices]
    assert torch.allclose(right.curves - base, -(left.curves - base), atol=1e-6)


def test_baseline_is_resampled_to_other_frame_counts(tiny_channels):
    from moft.method.targets import baseline_curve

    b = baseline_curve(tiny_channels, 16)
    assert b.shape == (16, tiny_channels.num_channels)
    assert torch.allclose(b.mean(0), torch.zeros(tiny_channels.num_channels), atol=1e-6)
    base = tiny_channels.baseline
    assert torch.allclose(b[0] - b[-1], base[0] - base[-1], atol=1e-5)  # endpoints kept, up to the mean shift
    assert torch.equal(baseline_curve(tiny_channels, base.shape[0]), base.float())


def test_reversal_gives_a_piecewise_linear_curve(tiny_channels):
    traj = _traj({"segments": [{"frames": [0, 3], "direction": "right"}, {"frames": [4, 7], "direction": "left"}]})
    c = synthesize_target(traj, tiny_channels, latent_size=(16, 16)).curves[0]  # (F, d)
    c = c - tiny_channels.baseline[:, tiny_channels.indices]
    slopes = torch.diff(c, dim=0)
    assert torch.allclose(slopes[:3], slopes[0].expand(3, -1), atol=1e-6)
    assert torch.allclose(slopes[4:], -slopes[0].expand(3, -1), atol=1e-6)


def test_gain_scales_curves(tiny_channels):
    a = synthesize_target(_traj({"direction": "up"}), tiny_channels, latent_size=(16, 16))
    b = synthesize_target(_traj({"direction": "up"}), tiny_channels, latent_size=(16, 16), gain=2.0)
    base = tiny_channels.baseline[:, tiny_channels.indices]
    assert torch.allclose(b.curves - base, 2 * (a.curves - base), atol=1e-6)


def test_frame_count_mismatch_is_a_trajectory_error(tiny_channels):
    with pytest.raises(TrajectoryError, match="frames"):
        synthesize_target(_traj({"direction": "up"}), tiny_channels, latent_size=(16, 16), num_frames=16)


def test_masks_are_on_the_working_grid(tiny_channels):
    t = synthesize_target(_traj({"direction": "up"}), tiny_channels, latent_size=(16, 16))
    assert t.masks.shape == (1, 16, 16) and t.masks.dtype == torch.bool
    assert int(t.masks.sum()) == 64  # the box covers half of each side


def test_save_load_round_trip(tmp_path, tiny_channels):
    t = synthesize_target(_traj({"direction": "left"}), tiny_channels, latent_size=(16, 16))
    t.save(tmp_path / "t.safetensors")
    u = Target.load(tmp_path / "t.safetensors")
    assert torch.equal(t.curves, u.curves) and torch.equal(t.masks, u.masks) and torch.equal(t.channels, u.channels)
    assert u.meta["source"] == "trajectory" and u.content_removal


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(TargetError, match="no such target file"):
        Target.load(tmp_path / "none.safetensors")
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    with pytest.raises(TargetError, match="not a moft target file"):
        Target.load(tmp_path / "x.safetensors")


def test_reference_target_of_a_pan(animatediff, tiny_channels):
    from moft.io.synthetic import make_clip

    clip = make_clip(np.random.default_rng(0), kind="pan", direction="left")
    frames = (clip.frames * 255).round().astype(np.uint8)
    t = reference_target(animatediff, frames, channels=tiny_channels, num_steps=5, timestep=200)
    d = len(tiny_channels.indices)
    assert t.curves.shape == (1, FRAMES, d) and t.maps.shape == (1, FRAMES, d, 16, 16)
    assert torch.allclose(t.curves.mean(1), torch.zeros(1, d), atol=1e-5)
    assert t.meta["source"] == "reference"


def test_reference_target_vanilla_keeps_all_channels_and_the_frame_mean(animatediff):
    from moft.io.synthetic import make_clip

    frames = (make_clip(np.random.default_rng(1), kind="pan").frames * 255).astype(np.uint8)
    t = reference_target(animatediff, frames, channels=None, num_steps=5, content_removal=False)
    assert t.channels is None and t.curves.shape[-1] == 64 and not t.content_removal
    assert t.curves.mean(1).abs().max() > 1e-4


def test_drag_target_inverts_the_dragged_source_over_the_swept_region(animatediff, tiny_channels):
    from moft.io.synthetic import make_clip
    from moft.method.targets import drag_target
    from moft.io.trajectory import parse_trajectory

    still = make_clip(np.random.default_rng(2), kind="still").frames  # (F, 32, 32, 3)
    traj = parse_trajectory({"version": 1, "frames": FRAMES, "regions": [
        {"mask": {"box": [0.0, 0.0, 0.25, 0.25]}, "direction": "right", "speed": 0.05}]})
    t = drag_target(animatediff, still, traj, channels=tiny_channels, num_steps=5, timestep=200)
    d = len(tiny_channels.indices)
    assert t.maps.shape == (1, FRAMES, d, 16, 16) and t.curves.shape == (1, FRAMES, d)
    assert t.masks.shape == (1, 16, 16) and t.masks[0, :4, :9].all() and not t.masks[0, 4:].any()
    assert t.meta["source"] == "drag" and t.meta["trajectory"] == traj.to_dict()
    with pytest.raises(TrajectoryError, match="frames"):
        drag_target(animatediff, still[:4], traj, channels=tiny_channels, num_steps=5)


def test_a_curves_target_refuses_a_zoom_in_one_line(tiny_channels):
    """A zoom's displacement field points away from the centre and averages to zero over the region:
    the region-mean position model has nothing to express it with."""
    for motion in ({"zoom": 1.3}, {"direction": "left", "zoom": 0.8}):
        with pytest.raises(TrajectoryError, match=r"^regions\[0\]\.zoom: a curves target cannot express a zoom") as info:
            synthesize_target(_traj(motion), tiny_channels, latent_size=(16, 16))
        assert "\n" not in str(info.value) and "--target-kind drag" in str(info.value)
    synthesize_target(_traj({"direction": "left"}), tiny_channels, latent_size=(16, 16))  # no zoom: fine


def test_reference_target_defaults_are_the_official_inversion_step(animatediff, tiny_channels):
    """Official code: features of the 25-step DDIM inversion at t = 200, with the frame mean removed;
    the meta records the step and timestep actually used (the diffusers schedule here is 39, 79, ...,
    199, ...: step 4, t = 199, where the official 0, 40, ..., 200 gives step 5)."""
    from moft.models.loading import ddim_scheduler
    from moft.io.synthetic import make_clip

    frames = (make_clip(np.random.default_rng(3), kind="pan", direction="up").frames * 255).astype(np.uint8)
    t = reference_target(animatediff, frames, channels=tiny_channels)
    sched = ddim_scheduler(animatediff)
    sched.set_timesteps(25)
    ascending = sorted(int(s) for s in sched.timesteps)
    assert t.meta["num_steps"] == 25
    assert t.meta["timestep"] == ascending[t.meta["inversion_step"]]
    assert abs(t.meta["timestep"] - 200) == min(abs(a - 200) for a in ascending)
    assert t.content_removal
    assert torch.allclose(t.maps.mean(1), torch.zeros_like(t.maps.mean(1)), atol=1e-5)  # (R, d, h, w)


def test_save_and_load_take_string_paths(tmp_path, tiny_channels):
    t = synthesize_target(_traj({"direction": "up"}), tiny_channels, latent_size=(16, 16))
    path = str(tmp_path / "t.safetensors")
    t.save(path)
    assert torch.equal(Target.load(path).curves, t.curves)


def test_size_and_frame_count_are_the_working_grid_and_the_trajectorys(tiny_channels):
    t = synthesize_target(_traj({"direction": "down"}), tiny_channels, latent_size=(16, 12))
    assert t.size == (16, 12) and t.num_frames == FRAMES


@pytest.mark.parametrize("mode", ["inversion", "noise"])
def test_targets_at_several_timesteps_equal_targets_taken_one_by_one(animatediff, tiny_channels, mode):
    """``timesteps``: one inversion (or one noised forward each) gives, at every timestep, the maps a
    target taken at that timestep alone has; ``Target.at`` picks the nearest; they survive save/load."""
    from moft.io.synthetic import make_clip

    frames = (make_clip(np.random.default_rng(4), kind="pan", direction="right").frames * 255).astype(np.uint8)
    t = reference_target(animatediff, frames, channels=tiny_channels, num_steps=5, timestep=200, mode=mode,
                         timesteps=[799, 399])
    d = len(tiny_channels.indices)
    assert t.timed_maps.shape == (2, 1, FRAMES, d, 16, 16) and t.meta["timesteps"] == [799, 399]
    for k, ts in enumerate((799, 399)):
        alone = reference_target(animatediff, frames, channels=tiny_channels, num_steps=5, timestep=ts, mode=mode)
        assert torch.allclose(t.timed_maps[k], alone.maps, atol=1e-5)
        assert torch.allclose(t.at(ts + 30).maps, alone.maps, atol=1e-5)
        assert torch.allclose(t.at(ts).curves, alone.curves, atol=1e-5)
    fixed = reference_target(animatediff, frames, channels=tiny_channels, num_steps=5, timestep=200, mode=mode)
    assert torch.equal(t.maps, fixed.maps) and fixed.at(799) is fixed  # no timed maps: the one target


def test_timed_maps_survive_save_and_load(tmp_path, tiny_channels):
    t = synthesize_target(_traj({"direction": "up"}), tiny_channels, latent_size=(16, 16))
    t.timed_maps = torch.randn(2, 1, FRAMES, t.curves.shape[-1], 16, 16)
    t.meta["timesteps"] = [900, 300]
    back = Target.load(t.save(tmp_path / "timed.safetensors"))
    assert torch.equal(back.timed_maps, t.timed_maps) and back.meta["timesteps"] == [900, 300]

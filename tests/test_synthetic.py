"""Synthetic clips: determinism, ground-truth tracks, captions, kinds, batches, and trackers agreeing."""

from __future__ import annotations

import numpy as np
import pytest

from moft.eval.metrics import track_centroid
from moft.io.synthetic import (
    COLORS, DIRECTIONS, KINDS, RADIUS_RANGE, SHAPES, make_batch, make_clip, object_weights, pan_video,
)

SIZE, FRAMES = 32, 8


def _clip(seed: int, **kwargs):
    return make_clip(np.random.default_rng(seed), **kwargs)


def test_make_clip_is_deterministic_per_seed():
    a, b = _clip(11), _clip(11)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.tracks, b.tracks)
    assert (a.caption, a.kind, a.directions, a.colors, a.shapes) == (b.caption, b.kind, b.directions, b.colors,
                                                                     b.shapes)


def test_make_clip_differs_between_seeds():
    assert not np.array_equal(_clip(1, kind="object").frames, _clip(2, kind="object").frames)


def test_make_clip_frames_are_float_in_unit_range():
    clip = _clip(0)
    assert clip.frames.shape == (FRAMES, SIZE, SIZE, 3)
    assert clip.frames.dtype == np.float32
    assert clip.frames.min() >= 0.0 and clip.frames.max() <= 1.0


@pytest.mark.parametrize("kind", ["object", "reverse", "still", "two_objects"])
def test_objects_stay_inside_the_frame(kind):
    for seed in range(40):
        clip = _clip(seed, kind=kind)
        assert clip.tracks.shape == (2 if kind == "two_objects" else 1, FRAMES, 2)
        assert clip.tracks.min() >= 0.0 and clip.tracks.max() <= SIZE, (kind, seed)


def test_objects_stay_inside_the_frame_at_top_speed():
    for seed, name in enumerate(DIRECTIONS):
        clip = _clip(seed, kind="object", direction=name, speed=2.25)
        assert clip.tracks.min() >= 0.0 and clip.tracks.max() <= SIZE, name


def test_caption_names_colour_shape_and_direction():
    clip = _clip(0, kind="object", direction="left", color="red", shape="disk", describe_motion=True)
    assert clip.caption == "a red disk moving left"


@pytest.mark.parametrize("seed", range(8))
def test_random_object_caption_names_its_own_attributes(seed):
    clip = _clip(seed, kind="object", describe_motion=True)
    assert clip.colors[0] in COLORS and clip.shapes[0] in SHAPES and clip.directions[0] in DIRECTIONS
    assert clip.caption == f"a {clip.colors[0]} {clip.shapes[0]} moving {clip.directions[0]}"


def test_reverse_caption_names_both_directions():
    clip = _clip(3, kind="reverse", direction="right", describe_motion=True)
    assert clip.caption.endswith("moving right then left")


def test_caption_without_motion_names_only_the_object():
    clip = _clip(0, kind="object", color="blue", shape="square", describe_motion=False)
    assert clip.caption == "a blue square"


def test_object_track_moves_in_its_direction_at_its_speed():
    clip = _clip(4, kind="object", direction="down right", speed=1.5)
    steps = np.diff(clip.tracks[0], axis=0)
    np.testing.assert_allclose(steps, np.tile(np.asarray(DIRECTIONS["down right"]) * 1.5, (FRAMES - 1, 1)))


def test_pan_moves_the_background():
    clip = _clip(5, kind="pan", direction="left")
    diffs = np.abs(np.diff(clip.frames, axis=0)).max(axis=(1, 2, 3))
    assert (diffs > 0.01).all()


def test_pan_moves_the_content_in_its_direction():
    clip = _clip(5, kind="pan", direction="left", speed=1.5)
    steps = np.diff(clip.tracks[0], axis=0)
    np.testing.assert_allclose(steps, np.tile([-1.5, 0.0], (FRAMES - 1, 1)), atol=1e-12)


def test_still_keeps_the_object_still():
    clip = _clip(6, kind="still")
    assert np.ptp(clip.tracks, axis=1).max() == 0.0
    assert clip.directions == ["still"]


def test_still_frames_are_identical():
    clip = _clip(6, kind="still")
    assert np.array_equal(clip.frames, np.repeat(clip.frames[:1], FRAMES, axis=0))


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="kind"):
        _clip(0, kind="explode")


def test_make_clip_size_and_frames_are_honoured():
    clip = _clip(0, size=48, n_frames=5, kind="object")
    assert clip.frames.shape == (5, 48, 48, 3)
    assert clip.tracks.shape == (1, 5, 2)


def test_make_batch_stacks_clips_and_captions():
    frames, captions = make_batch(np.random.default_rng(0), 3)
    assert frames.shape == (3, FRAMES, SIZE, SIZE, 3)
    assert frames.dtype == np.float32
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)


def test_make_batch_passes_options_to_each_clip():
    frames, captions = make_batch(np.random.default_rng(0), 2, kind="still", n_frames=4, describe_motion=True)
    assert frames.shape == (2, 4, SIZE, SIZE, 3)
    assert all(c.endswith("standing still") for c in captions)


def test_kind_weights_choose_the_data_mix():
    rng = np.random.default_rng(0)
    kinds = {make_clip(rng, n_frames=2, kind_weights={"still": 1.0, "pan": 0.0}).kind for _ in range(5)}
    assert kinds == {"still"}


def test_describe_prob_zero_never_names_the_motion():
    rng = np.random.default_rng(0)
    captions = [make_clip(rng, n_frames=2, kind="object", describe_prob=0.0).caption for _ in range(5)]
    assert not any("moving" in c for c in captions)


@pytest.mark.parametrize("weights", [{"jump": 1.0}, {"still": 0.0}, {"still": -1.0, "pan": 2.0}])
def test_bad_kind_weights_are_rejected(weights):
    with pytest.raises(ValueError, match="kind_weights"):
        make_clip(np.random.default_rng(0), n_frames=2, kind_weights=weights)


def test_default_mix_is_unchanged_by_the_new_options():
    a = make_clip(np.random.default_rng(5), n_frames=2)
    b = make_clip(np.random.default_rng(5), n_frames=2, kind_weights=None, describe_prob=0.8)
    assert a.caption == b.caption and np.array_equal(a.frames, b.frames)


def test_pan_video_is_a_pan_in_the_nearest_direction():
    clip = pan_video(np.random.default_rng(0), direction=(0.0, 3.0), speed=2.0)
    assert clip.kind == "pan" and clip.directions == ["down"]
    np.testing.assert_allclose(np.diff(clip.tracks[0], axis=0), np.tile([0.0, 2.0], (FRAMES - 1, 1)), atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_centroid_tracker_recovers_the_object_track(seed):
    clip = _clip(seed, kind="object")
    path = track_centroid(clip.frames, color=COLORS[clip.colors[0]])
    assert np.isfinite(path).all()
    assert np.abs(path - clip.tracks[0]).max() <= 1.0


def test_centroid_tracker_has_no_systematic_offset_from_the_tracks():
    bias = []
    for seed in range(10):
        clip = _clip(seed, kind="object")
        path = track_centroid(clip.frames, color=COLORS[clip.colors[0]])
        bias.append((path - clip.tracks[0]).mean(axis=0))
    assert np.abs(np.mean(bias, axis=0)).max() < 0.2


def test_every_kind_can_be_drawn():
    kinds = {_clip(seed).kind for seed in range(60)}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("direction", ["right", "up left", "down"])
def test_crossing_objects_start_at_the_edge_behind_their_motion(direction):
    clip = make_clip(np.random.default_rng(2), kind="object", direction=direction, cross_prob=1.0)
    d = np.asarray(DIRECTIONS[direction])
    start, r = clip.tracks[0, 0], RADIUS_RANGE[1]
    for axis in range(2):
        if d[axis] > 0:
            assert start[axis] <= r + 1.0 + 1e-6  # the near (low) edge
        elif d[axis] < 0:
            assert start[axis] >= 32 - r - 1.0 - 1e-6  # the far (high) edge
    assert (clip.tracks >= 0).all() and (clip.tracks <= 32).all()


def test_cross_prob_zero_leaves_the_default_stream_unchanged():
    a = make_clip(np.random.default_rng(9), n_frames=3)
    b = make_clip(np.random.default_rng(9), n_frames=3, cross_prob=0.0)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_masks_cover_each_object_where_its_track_is():
    clip = make_clip(np.random.default_rng(4), kind="two_objects")
    assert clip.masks.shape == clip.frames.shape[:3] and clip.masks.dtype == np.float32
    for track in clip.tracks:
        for f, (x, y) in enumerate(track):
            assert clip.masks[f, int(round(y)), int(round(x))] == 1.0
    assert 0.0 < clip.masks.mean() < 0.3  # objects, not the background


def test_masks_are_empty_far_from_the_object():
    clip = make_clip(np.random.default_rng(5), kind="object", direction="right")
    ys, xs = np.mgrid[0:32, 0:32]
    for f, (x, y) in enumerate(clip.tracks[0]):
        far = np.hypot(xs - x, ys - y) > 8  # radius is at most 5.5 px (squares: corner at 7.8)
        assert clip.masks[f][far].max() == 0.0


def test_object_weights_are_one_off_the_objects_and_one_plus_weight_where_covered():
    masks = np.zeros((2, 8, 32, 32), np.float32)
    masks[0, :, :4, :4] = 1.0  # a whole 2x2 latent block of frame-batch 0
    masks[1, 3, 0, 0] = 1.0  # one pixel of a 2x2 block
    w = object_weights(masks, (16, 16), 10.0)
    assert w.shape == (2, 8, 16, 16) and w.dtype == np.float32
    assert (w[0, :, :2, :2] == 11.0).all() and w[0, :, 2:].min() == 1.0
    assert w[1, 3, 0, 0] == pytest.approx(1 + 10 / 4) and w[1].sum() == pytest.approx(16 * 16 * 8 + 10 / 4)
    assert (object_weights(masks, (16, 16), 0.0) == 1.0).all()
    with pytest.raises(ValueError, match="does not divide"):
        object_weights(masks, (10, 10), 1.0)

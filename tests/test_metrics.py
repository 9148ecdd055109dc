"""Tests for moft.eval.metrics on small synthetic videos (32x32, 8 frames)."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from moft.eval.metrics import (
    angle_between,
    camera_motion,
    direction_success,
    flow_tracks,
    mean_path,
    motion_fidelity,
    objmc,
    optical_flow,
    path_fit,
    psnr,
    region_points,
    region_tracks,
    request_tracks,
    ssim,
    ssim_map,
    track_centroid,
    track_points,
    trajectory_error,
)

H = W = 32
F = 8
YELLOW = (1.0, 1.0, 0.0)


def smooth_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float32 in [0.25, 0.75]: blurred noise."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return 0.25 + 0.5 * smooth


def disk_video(frames=F, start=(8.0, 16.0), velocity=(2.0, 0.0), radius=4, color=YELLOW):
    """Disk moving over a static texture -> ((F, H, W, 3) uint8, (F, 2) true centres)."""
    background = smooth_texture(H, W)
    yy, xx = np.mgrid[0:H, 0:W]
    video, path = [], []
    for k in range(frames):
        cx, cy = start[0] + velocity[0] * k, start[1] + velocity[1] * k
        frame = background.copy()
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2] = color
        video.append(frame)
        path.append((cx, cy))
    return (np.stack(video) * 255).round().astype(np.uint8), np.array(path)


def pan_video(step=(1, 2), frames=F):
    """Crop window moving by ``step`` (dx, dy) per frame: content moves by -step."""
    big = smooth_texture(H + 40, W + 40, seed=3)
    y0, x0 = 20 - step[1] * frames // 2, 20 - step[0] * frames // 2
    video = [big[y0 + step[1] * k : y0 + step[1] * k + H, x0 + step[0] * k : x0 + step[0] * k + W] for k in range(frames)]
    return np.stack(video)  # (F, H, W, 3) float


def disk_mask(center=(8.0, 16.0), radius=6):
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius**2


# ---------------------------------------------------------------------------
# tracking
# ---------------------------------------------------------------------------


def test_track_centroid_color_mode_recovers_path():
    video, path = disk_video()
    for color in (YELLOW, (255, 255, 0)):
        found = track_centroid(video, color=color)
        assert found.shape == (F, 2)
        assert np.abs(found - path).max() < 0.5


def test_track_centroid_float_video_and_mask():
    video, path = disk_video()
    found = track_centroid(video.astype(np.float32) / 255, color=YELLOW, mask=disk_mask())
    assert np.abs(found - path).max() < 0.5


def test_track_centroid_median_mode():
    video, path = disk_video(frames=16, start=(6.0, 8.0), velocity=(1.0, 1.0))
    found = track_centroid(video)
    assert np.abs(found - path).max() < 0.5


def test_track_centroid_mask_picks_component_and_nan_when_missing():
    video, path = disk_video()
    # a second, smaller yellow disk that stays still in the top-right corner
    yy, xx = np.mgrid[0:H, 0:W]
    video[:, (xx - 26) ** 2 + (yy - 5) ** 2 <= 9] = (255, 255, 0)
    video[5, (xx - path[5, 0]) ** 2 + (yy - path[5, 1]) ** 2 <= 16] = 128  # disk hidden in frame 5
    found = track_centroid(video, color=YELLOW, mask=disk_mask())
    ok = np.arange(F) != 5
    assert np.abs(found[ok] - path[ok]).max() < 0.5
    assert np.isnan(found[5]).all()
    # without mask, the largest component wins: still the moving disk (r=4 > r=3)
    assert np.abs(track_centroid(video, color=YELLOW)[0] - path[0]).max() < 0.5


def test_track_points_disk_moves_right():
    video, _ = disk_video()
    tracks = track_points(video, mask=disk_mask())
    assert tracks.ndim == 3 and tracks.shape[1:] == (F, 2) and len(tracks) >= 3
    displacement = np.nanmean(np.diff(tracks, axis=1), axis=(0, 1))
    np.testing.assert_allclose(displacement, (2.0, 0.0), atol=0.25)


def test_track_points_pan():
    video = pan_video(step=(1, 2))
    tracks = track_points(video)
    assert len(tracks) >= 10
    displacement = np.nanmedian(np.diff(tracks, axis=1), axis=(0, 1))
    np.testing.assert_allclose(displacement, (-1.0, -2.0), atol=0.1)
    mean = np.nanmean(np.diff(tracks, axis=1), axis=(0, 1))
    np.testing.assert_allclose(mean, (-1.0, -2.0), atol=0.2)
    # points leaving through the top edge are lost, and stay lost
    assert np.isnan(tracks[:, -1]).any()
    lost = np.isnan(tracks[:, :, 0])
    assert np.all(lost[:, 1:] >= lost[:, :-1])


def test_track_points_flat_video_and_bad_mask():
    flat = np.full((4, 16, 16, 3), 100, np.uint8)
    assert track_points(flat).shape == (0, 4, 2)
    with pytest.raises(ValueError):
        track_points(flat, mask=np.ones((8, 8), bool))


# ---------------------------------------------------------------------------
# motion fidelity
# ---------------------------------------------------------------------------


def random_walks(n, frames=F, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, frames, 2)).cumsum(axis=1) * 2.0


def test_motion_fidelity_identical_opposite_symmetric():
    tracks = random_walks(20)
    assert motion_fidelity(tracks, tracks) == pytest.approx(1.0)
    # opposite: every point moves exactly against one reference direction
    line = np.zeros((5, F, 2))
    line[:, :, 0] = np.arange(F) * 2.0 + np.arange(5)[:, None]
    assert motion_fidelity(line, -line) == pytest.approx(-1.0)
    other = random_walks(13, seed=1)
    assert motion_fidelity(tracks, other) == pytest.approx(motion_fidelity(other, tracks))
    assert -1.0 <= motion_fidelity(tracks, other) <= 1.0
    assert motion_fidelity(tracks, other) < 0.9


def test_motion_fidelity_on_tracker_output():
    tracks = track_points(pan_video(step=(1, 2)))
    assert motion_fidelity(tracks, tracks) == pytest.approx(1.0)
    opposite = track_points(pan_video(step=(-1, -2)))
    assert motion_fidelity(tracks, opposite) < -0.9


def test_motion_fidelity_nan_still_and_empty():
    tracks = random_walks(4)
    tracks[0, 3:] = np.nan  # lost part way: scored over its valid frames
    assert motion_fidelity(tracks, tracks) == pytest.approx(1.0)
    still = np.ones((3, F, 2))
    assert motion_fidelity(still, still) == pytest.approx(1.0)
    assert motion_fidelity(still, random_walks(3)) == pytest.approx(0.0)
    assert math.isnan(motion_fidelity(np.zeros((0, F, 2)), tracks))
    assert math.isnan(motion_fidelity(tracks, np.full((2, F, 2), np.nan)))
    with pytest.raises(ValueError):
        motion_fidelity(tracks, random_walks(2, frames=F + 1))


def test_motion_fidelity_fast_for_500_tracks():
    a, b = random_walks(500, frames=16, seed=2), random_walks(500, frames=16, seed=3)
    start = time.perf_counter()
    score = motion_fidelity(a, b)
    assert time.perf_counter() - start < 2.0
    assert 0.0 < score < 1.0


# ---------------------------------------------------------------------------
# path metrics
# ---------------------------------------------------------------------------


def test_trajectory_error():
    _, path = disk_video()
    assert trajectory_error(path, path, height=H, width=W) == 0.0
    shifted = path + np.array([3.2, 0.0])
    assert trajectory_error(shifted, path, height=H, width=W) == pytest.approx(0.1)
    diagonal = path + np.array([3.0, 4.0])
    assert trajectory_error(diagonal, path, height=30, width=30) == pytest.approx(5.0 / 30)
    partial = shifted.copy()
    partial[2:5] = np.nan
    assert trajectory_error(partial, path, height=H, width=W) == pytest.approx(0.1)
    assert math.isnan(trajectory_error(np.full((F, 2), np.nan), path, height=H, width=W))


def rotated_path(angle_deg, length=20.0, frames=F):
    t = np.linspace(0, 1, frames)[:, None]
    direction = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    return 10.0 + t * length * direction  # (F, 2)


def test_direction_success():
    requested = rotated_path(0)
    assert direction_success(rotated_path(20), requested)
    assert not direction_success(rotated_path(25), requested)
    assert direction_success(rotated_path(-20), requested)
    assert not direction_success(rotated_path(180), requested)
    assert direction_success(rotated_path(25), requested, tolerance_deg=30)
    # tracked object did not move while the request moves
    assert not direction_success(np.full((F, 2), 5.0), requested)
    # still request: success iff the object stays within still_tolerance
    still = np.full((F, 2), 5.0)
    assert direction_success(still + 0.2, still)
    assert not direction_success(rotated_path(0, length=3.0), still)
    # NaN frames at the ends are skipped
    tracked = rotated_path(10)
    tracked[[0, -1]] = np.nan
    assert direction_success(tracked, requested)
    assert not direction_success(np.full((F, 2), np.nan), requested)


def test_angle_between():
    assert angle_between((1, 0), (0, 1)) == pytest.approx(90.0)
    assert angle_between((1, 0), (-1, 0)) == pytest.approx(180.0)
    assert angle_between((1, 1), (2, 2)) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(angle_between((0, 0), (1, 0)))


def test_path_fit_line_random_walk_and_still():
    line = rotated_path(90, length=14.0)  # straight down
    fit = path_fit(line)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["speed"] == pytest.approx(2.0)
    assert fit["direction_consistency"] == pytest.approx(1.0)
    assert fit["angle_deg"] == pytest.approx(90.0)
    assert (fit["net_dx"], fit["net_dy"]) == pytest.approx((0.0, 14.0), abs=1e-9)

    walks = [path_fit(walk) for walk in random_walks(20, frames=16, seed=5)]
    assert np.mean([fit["r2"] for fit in walks]) < 0.7
    assert abs(np.mean([fit["direction_consistency"] for fit in walks])) < 0.2
    angle = np.linspace(0, 2 * np.pi, 17)
    circle = np.stack([10 + 5 * np.cos(angle), 10 + 5 * np.sin(angle)], axis=1)
    assert path_fit(circle)["r2"] < 0.3

    still = path_fit(np.full((F, 2), 3.0))
    assert still["r2"] == 1.0 and still["speed"] == 0.0
    assert math.isnan(still["angle_deg"])

    holes = line.copy()
    holes[3] = np.nan
    assert path_fit(holes)["r2"] == pytest.approx(1.0)
    assert path_fit(holes)["num_valid"] == F - 1
    assert math.isnan(path_fit(np.full((F, 2), np.nan))["r2"])


# ---------------------------------------------------------------------------
# PSNR / SSIM
# ---------------------------------------------------------------------------


def test_psnr_ssim_identical_and_dtypes():
    video, _ = disk_video()
    assert psnr(video, video) == math.inf
    assert ssim(video, video) == pytest.approx(1.0, abs=1e-12)
    as_float = video.astype(np.float32) / 255
    assert psnr(video, as_float) == math.inf
    assert ssim(as_float, video) == pytest.approx(1.0, abs=1e-6)


def test_psnr_ssim_noisy():
    video, _ = disk_video()
    clean = video.astype(np.float64) / 255
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1)
    noisier = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1)
    mse = np.mean((noisy - clean) ** 2)
    assert psnr(noisy, clean) == pytest.approx(10 * np.log10(1 / mse))
    assert 20 < psnr(noisy, clean) < 30
    assert psnr(noisier, clean) < psnr(noisy, clean)
    assert 0 < ssim(noisier, clean) < ssim(noisy, clean) < 1
    assert ssim(noisy, clean) == pytest.approx(ssim(clean, noisy))


def test_psnr_ssim_masked():
    video, _ = disk_video()
    damaged = video.copy()
    damaged[:, :, 16:] = 255 - damaged[:, :, 16:]  # right half changed
    left = np.zeros((H, W), bool)
    left[:, :11] = True  # out of reach of the changed half (SSIM window is 11x11: 5 px each side)
    assert psnr(damaged, video, mask=left) == math.inf
    assert ssim(damaged, video, mask=left) == pytest.approx(1.0)
    assert psnr(damaged, video) < 20
    assert ssim(damaged, video) < 0.7
    per_frame = np.broadcast_to(left, (F, H, W)).copy()
    assert psnr(damaged, video, mask=per_frame) == math.inf
    assert math.isnan(psnr(damaged, video, mask=np.zeros((H, W), bool)))
    with pytest.raises(ValueError):
        psnr(damaged, video, mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError):
        ssim(video[:2], video)


def test_steering_separates_push_from_damping():
    from moft.eval.metrics import steering

    frames = np.arange(8, dtype=float)[:, None]
    source = np.hstack([frames * 1.0, np.zeros((8, 1))])  # moves right 7 px
    left = -source  # requested: left
    pushed = np.hstack([frames * -0.5, frames * 0.2])  # now left 3.5 px, drifting down 1.4 px
    out = steering(pushed, source, left)
    assert out["toward_px"] == pytest.approx(10.5)
    assert out["across_px"] == pytest.approx(1.4)
    assert out["motion_kept"] == pytest.approx(np.hypot(3.5, 1.4) / 7)
    damped = source * 0.25  # slower, same way: pushed 5.25 px *toward* left, kept a quarter
    assert steering(damped, source, left)["toward_px"] == pytest.approx(5.25)
    assert steering(damped, source, left)["motion_kept"] == pytest.approx(0.25)
    assert steering(source, source, source)["toward_px"] == 0.0
    still = steering(pushed, source, np.zeros((8, 2)))
    assert math.isnan(still["toward_px"]) and not math.isnan(still["motion_kept"])
    assert math.isnan(steering(np.full((8, 2), np.nan), source, left)["toward_px"])


# ---------------------------------------------------------------------------
# general motion metrics against planted ground truth
# ---------------------------------------------------------------------------


def _grey_texture(size, seed, blur=1.5):
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), blur)
    return np.repeat(((t - t.min()) / (t.max() - t.min()))[..., None], 3, axis=-1)  # (S, S, 3) in [0, 1]


def patch_video(size=64, velocity=(1.3, -0.7), frames=F):
    """A textured square translated by a sub-pixel ``velocity`` (px/frame) over another, still texture.

    Returns ((F, S, S, 3) uint8, (S, S) bool interior of the square in frame 0, 4 px in from its edge).
    """
    background = 0.35 + 0.3 * _grey_texture(size, 1)
    texture = _grey_texture(size, 2)
    yy, xx = np.mgrid[0:size, 0:size]
    centre, half = 0.45 * size, 0.25 * size
    video = []
    for k in range(frames):
        dx, dy = velocity[0] * k, velocity[1] * k
        shifted = cv2.warpAffine(texture, np.float32([[1, 0, dx], [0, 1, dy]]), (size, size), flags=cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_REFLECT)
        inside = (np.abs(xx - centre - dx) <= half) & (np.abs(yy - centre - dy) <= half)
        video.append(np.where(inside[..., None], shifted, background))
    interior = (np.abs(xx - centre) <= half - 4) & (np.abs(yy - centre) <= half - 4)
    return (np.stack(video) * 255).round().astype(np.uint8), interior


@pytest.mark.parametrize("tracker", ["lk_corners", "lk_grid", "dis", "farneback"])
def test_trackers_recover_a_planted_sub_pixel_translation(tracker):
    velocity = np.array([1.3, -0.7])
    video, interior = patch_video(velocity=tuple(velocity))
    if tracker == "lk_corners":
        tracks = track_points(video, mask=interior)
    elif tracker == "lk_grid":
        tracks = track_points(video, points=region_points(interior, spacing=3))
    else:
        tracks = flow_tracks(video, mask=interior, method=tracker, spacing=3)
    assert len(tracks) >= 3 and np.isfinite(tracks).all()  # nothing lost: the square stays in view
    truth = tracks[:, :1] + np.arange(F)[:, None] * velocity  # (N, F, 2)
    error = np.linalg.norm(tracks - truth, axis=-1)  # (N, F)
    assert np.percentile(error, 90) < 0.25
    np.testing.assert_allclose(mean_path(tracks)[-1] - mean_path(tracks)[0], (F - 1) * velocity, atol=0.25)
    # against the request it was given, the translation scores full fidelity and a small ObjMC error
    requested = request_tracks(tracks[:, 0], truth[0])
    assert motion_fidelity(tracks, requested) > 0.99
    assert objmc(tracks, requested) < 0.25
    assert objmc(tracks, request_tracks(tracks[:, 0], -truth[0])) > 5


@pytest.mark.parametrize("method", ["lk", "dis", "farneback"])
def test_region_tracks_seed_inside_the_region_and_follow_it(method):
    velocity = np.array([1.3, -0.7])
    video, interior = patch_video(velocity=tuple(velocity))
    tracks = region_tracks(video, interior, method=method)
    starts = tracks[:, 0].round().astype(int)
    inner = cv2.erode(interior.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert len(tracks) >= 4 and inner[starts[:, 1], starts[:, 0]].all()  # 2 px in from the edge
    np.testing.assert_allclose(mean_path(tracks)[-1] - mean_path(tracks)[0], (F - 1) * velocity, atol=0.25)
    flat = np.full((4, 32, 32, 3), 90, np.uint8)  # no corner anywhere: LK falls back to a grid
    region = np.zeros((32, 32), bool)
    region[8:20, 8:20] = True
    assert len(region_tracks(flat, region)) == 16 and len(track_points(flat, mask=region)) == 0


def test_flow_tracks_lose_points_that_leave_the_frame_or_fail_the_check():
    video = np.stack([np.roll(_grey_texture(32, 4), 3 * k, axis=1) for k in range(4)])  # content 3 px/frame right
    tracks = flow_tracks(video, points=np.array([[2.0, 16.0], [30.0, 16.0]]), method="farneback")
    assert np.isfinite(tracks[0]).all() and np.isnan(tracks[1, 1:]).all()  # x 30 -> 33 leaves a 32-px frame
    with pytest.raises(ValueError, match="method"):
        optical_flow(video, method="raft")


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_camera_motion_recovers_a_planted_pan_beside_a_moving_object(method):
    size, step = 64, (2, 1)  # the window moves up-left by (2, 1) px: the content moves (+2, +1) px/frame
    big = _grey_texture(size + 40, 3)
    video = np.stack([big[20 - step[1] * k:20 - step[1] * k + size, 20 - step[0] * k:20 - step[0] * k + size]
                      for k in range(F)])  # (F, S, S, 3)
    video = (video * 255).round().astype(np.uint8)
    box = np.zeros((F, size, size), bool)
    for k in range(F):  # an object on the left half, moving down 3 px/frame, against the pan
        box[k, 8 + 3 * k:26 + 3 * k, 2:34] = True
        video[k, box[k]] = (_grey_texture(size, 5)[:18, :32] * 255).round().astype(np.uint8).reshape(-1, 3)
    pan = camera_motion(video, exclude=box, method=method)  # (F - 1, 2)
    assert pan.shape == (F - 1, 2)
    np.testing.assert_allclose(pan, np.broadcast_to(step, pan.shape), atol=0.1)
    flow = optical_flow(video, method=method)
    np.testing.assert_allclose(camera_motion(video, exclude=box, flow=flow), pan)
    assert np.isnan(camera_motion(video, exclude=np.ones((size, size), bool), flow=flow)).all()


def test_motion_fidelity_closed_forms():
    frames = np.arange(F, dtype=float)[:, None]
    right = np.hstack([frames, 0 * frames])[None]  # (1, F, 2)
    down = np.hstack([0 * frames, frames])[None]
    sixty = np.hstack([0.5 * frames, np.sqrt(0.75) * frames])[None]
    assert motion_fidelity(right, sixty) == pytest.approx(0.5)
    assert motion_fidelity(right, down) == pytest.approx(0.0)
    # two generated tracks (right, down) against one reference (right): the reference's best match is 1;
    # the generated tracks' best matches are 1 and 0; half the paper's sum: (1 + 0.5) / 2
    assert motion_fidelity(np.concatenate([right, down]), right) == pytest.approx(0.75)
    # a track reversing half way scores the mean of its per-frame cosines: (3 * 1 + 4 * -1) / 7
    zigzag = np.hstack([np.minimum(frames, 3) - np.maximum(frames - 3, 0), 0 * frames])[None]
    assert motion_fidelity(zigzag, right) == pytest.approx(-1 / 7)


def test_region_points_mean_path_request_tracks_objmc():
    mask = np.zeros((10, 10), bool)
    mask[2:8, 3:9] = True
    pts = region_points(mask, spacing=2)
    assert mask[pts[:, 1].astype(int), pts[:, 0].astype(int)].all() and len(pts) == 9
    assert len(region_points(np.ones((100, 100), bool), spacing=1, max_points=50)) <= 50
    tracks = np.array([[[0, 0], [1, 0], [2, 0], [3, 0]],
                       [[10, 10], [11, 10], [np.nan, np.nan], [np.nan, np.nan]]], float)
    np.testing.assert_allclose(mean_path(tracks), [[5, 5], [6, 5], [7, 5], [8, 5]])
    assert np.isnan(mean_path(np.full((2, 3, 2), np.nan))).all()
    req = request_tracks(tracks[:, 0], np.array([[50, 50], [52, 50], [54, 50], [56, 50]], float))
    np.testing.assert_allclose(req[1, -1], [16, 10])
    # per point: 0, 1, 2, 3 px behind (first), 0, 1 px (second, then lost): mean of the 6 valid entries
    assert objmc(tracks, req) == pytest.approx((0 + 1 + 2 + 3 + 0 + 1) / 6)
    assert objmc(tracks, req[0, :, :] * 0 + tracks[0]) == pytest.approx(objmc(tracks, tracks[0]))
    assert math.isnan(objmc(np.full((1, 4, 2), np.nan), req[:1]))
    with pytest.raises(ValueError):
        objmc(tracks, req[:, :3])


# ---------------------------------------------------------------------------
# SSIM: the standard window, against scikit-image
# ---------------------------------------------------------------------------


def test_ssim_window_is_11x11():
    rng = np.random.default_rng(0)
    a = rng.random((1, 31, 31, 3))
    b = a.copy()
    b[0, 15, 15] = 1 - b[0, 15, 15]  # one pixel changed: windows centred within 5 px of it see it
    changed = np.abs(ssim_map(a, b)[0] - 1) > 1e-12
    yy, xx = np.nonzero(changed)
    assert (yy.min(), yy.max(), xx.min(), xx.max()) == (10, 20, 10, 20)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a = rng.random((3, 40, 48, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    kwargs = dict(channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    reference = [metrics.structural_similarity(a[k], b[k], full=True, **kwargs) for k in range(3)]
    assert ssim(a, b) == pytest.approx(np.mean([r[0] for r in reference]), abs=1e-7)
    full = np.stack([r[1].mean(axis=-1) for r in reference])  # (F, H, W)
    np.testing.assert_allclose(ssim_map(a, b), full, atol=1e-7)
    mask = np.zeros((40, 48), bool)
    mask[:20, 10:] = True
    assert ssim(a, b, mask=mask) == pytest.approx(full[:, mask].mean(), abs=1e-7)
    as_uint8 = (a * 255).round().astype(np.uint8), (b * 255).round().astype(np.uint8)
    uint8_reference = np.mean([metrics.structural_similarity(as_uint8[0][k], as_uint8[1][k], **dict(kwargs, data_range=255))
                               for k in range(3)])
    assert ssim(*as_uint8) == pytest.approx(uint8_reference, abs=1e-7)


# ---------------------------------------------------------------------------
# zoom and glitch frames
# ---------------------------------------------------------------------------

from moft.eval.metrics import GLITCH_FLOOR, frame_change, glitch, zoom_scale, zoom_success  # noqa: E402


def _zoom_video(zoom: float, frames: int = 8, size: int = 48, shift: float = 0.0) -> np.ndarray:
    """A blurred random texture scaled by 1 -> ``zoom`` linearly about the frame centre (and moved by
    ``shift`` px per frame), made by resampling a 4x larger texture (no border in view)."""
    rng = np.random.default_rng(3)
    big = cv2.GaussianBlur(rng.random((4 * size, 4 * size)).astype(np.float32), (0, 0), 2.0)
    c, C = (size - 1) / 2, (4 * size - 1) / 2
    out = []
    for f in range(frames):
        s = 1 + (zoom - 1) * f / (frames - 1)
        m = np.float32([[1 / s, 0, C - c / s - shift * f / s], [0, 1 / s, C - c / s]])  # output px -> texture px
        out.append(cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    grey = (np.stack(out) * 255).clip(0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.mark.parametrize("zoom", [1.3, 0.77, 1.0])
def test_zoom_scale_of_lk_tracks_recovers_a_planted_zoom(zoom):
    video = _zoom_video(zoom)
    mask = np.zeros((48, 48), bool)
    mask[12:36, 12:36] = True
    measured = zoom_scale(region_tracks(video, mask))
    assert measured == pytest.approx(zoom, rel=0.02)
    assert zoom_success(measured, 1.3) == (zoom > 1) and zoom_success(measured, 0.77) == (zoom < 1)


def test_zoom_scale_ignores_translation_and_needs_pairs():
    assert zoom_scale(region_tracks(_zoom_video(1.0, shift=1.5), np.ones((48, 48), bool))) == pytest.approx(1.0, abs=0.01)
    assert math.isnan(zoom_scale(np.zeros((1, 4, 2))))
    assert math.isnan(zoom_scale(np.full((5, 4, 2), np.nan)))
    with pytest.raises(ValueError, match="not 1"):
        zoom_success(1.2, 1.0)


def _ground(frames: int = 8, size: int = 32, flicker: float = 0.03, seed: int = 0) -> np.ndarray:
    """A still textured ground whose pixels flicker by up to ``flicker`` per frame (smoothly in space)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.5) * 0.6 + 0.2
    noise = [cv2.GaussianBlur(rng.uniform(-1, 1, (size, size, 3)).astype(np.float32), (0, 0), 2.0) for _ in range(frames)]
    noise = np.stack([n / np.abs(n).max() for n in noise]) * flicker / 2  # consecutive frames differ by <= flicker
    return (base[None] + noise).astype(np.float32)


def test_a_planted_one_frame_blob_is_a_glitch():
    source = _ground()
    video = _ground(seed=1)  # another flicker of the same ground, as strong
    outside = np.ones((32, 32), bool)
    assert not glitch(video, source, outside)
    blob = video.copy()
    blob[4, 22:26, 3:7] += np.float32([0.3, -0.3, 0.3])  # a 4x4 one-frame blob, colour change 0.3
    assert glitch(blob, source, outside)
    change = frame_change(blob, outside)
    assert change.argmax() in (3, 4) and change[3] > 0.25 and change[4] > 0.25  # in, then out
    tint = video.copy()
    tint[4] += np.float32([0.15, 0.15, -0.15])  # a one-frame colour shift of the whole ground
    assert glitch(tint, source, outside)
    hidden = np.ones((32, 32), bool)
    hidden[18:30, 0:10] = False  # the blob inside the (dilated) region does not count
    assert not glitch(blob, source, hidden)


def test_a_smoothly_moving_object_and_a_stronger_smooth_flicker_are_not_glitches():
    source = _ground()
    video = _ground(flicker=0.06, seed=2)  # twice the source's flicker: a changed but steady background
    for f in range(8):  # a red 6x6 object moving 1 px per frame, inside the region
        video[f, 12:18, 8 + f:14 + f] = (1.0, 0.0, 0.0)
    region = np.zeros((32, 32), bool)
    region[12:18, 8:21] = True
    outside = cv2.dilate(region.astype(np.uint8), np.ones((11, 11), np.uint8)) == 0
    assert not glitch(video, source, outside)
    assert np.nanmax(frame_change(video, outside)) < 2 * GLITCH_FLOOR
    with pytest.raises(ValueError, match="no patch"):
        glitch(video, source, np.zeros((32, 32), bool))


# ---------------------------------------------------------------------------
# split: guidance that copies the object instead of moving it
# ---------------------------------------------------------------------------

from moft.eval.metrics import object_pieces, split  # noqa: E402
from moft.io.synthetic import make_clip  # noqa: E402


def _red_disk_video(centres, size=32, radius=4, extra=()):
    """Frames of red disks on grey: one disk per frame at ``centres[k]``, plus ``extra[k]`` copies."""
    video = np.full((len(centres), size, size, 3), 0.4, np.float32)
    for k, c in enumerate(centres):
        for x, y in [c, *(extra[k] if extra else [])]:
            cv2.circle(video[k], (int(x), int(y)), radius, (1.0, 0.0, 0.0), -1)
    return video


def test_split_tells_a_moved_object_from_a_copied_one():
    still = [(10, 16)] * 8
    moved = [(10 + 2 * k, 16) for k in range(8)]  # the disk travels 14 px right
    copied = [(10, 16)] * 8  # the original stays, a copy appears at the requested place from frame 3
    copies = [[] if k < 3 else [(10 + 2 * k + 8, 16)] for k in range(8)]
    source = _red_disk_video(still)
    red = (1.0, 0.0, 0.0)
    assert object_pieces(_red_disk_video(moved), red).tolist() == [1] * 8
    assert object_pieces(_red_disk_video(copied, extra=copies), red).tolist() == [1, 1, 1, 2, 2, 2, 2, 2]
    assert not split(_red_disk_video(moved), source, red)
    assert split(_red_disk_video(copied, extra=copies), source, red)
    assert not split(source, source, red)


def test_split_ignores_specks_and_pieces_the_source_already_has():
    red = (1.0, 0.0, 0.0)
    two = _red_disk_video([(8, 8)] * 4, extra=[[(24, 24)]] * 4)  # two objects all along
    assert not split(two, two, red)
    speck = two.copy()
    speck[2, 16, 16] = red  # one pixel of the colour: below min_area, not a piece
    assert not split(speck, two, red)


def test_object_pieces_counts_the_synthetic_objects():
    """An independent count: each object of a synthetic two-object clip is one piece of its colour in every frame."""
    from moft.io.synthetic import COLORS

    clip = make_clip(np.random.default_rng(3), kind="two_objects")
    assert len(clip.colors) == 2
    for name in clip.colors:
        assert object_pieces(clip.frames, COLORS[name]).tolist() == [1] * len(clip.frames)


from moft.eval.metrics import object_kept  # noqa: E402


def test_object_kept_passes_every_synthetic_clip_and_fails_a_jump_a_growth_and_a_loss():
    """Planted: the training clips move their objects smoothly at SPEED_RANGE, so every one keeps its object;
    the same clip with frame 0 moved away (the model ignored the image), the object grown or lost does not."""
    from moft.io.synthetic import COLORS, SPEED_RANGE

    for seed in range(6):
        clip = make_clip(np.random.default_rng(seed), kind="object")
        rgb = COLORS[clip.colors[0]]
        assert object_kept(clip.frames, rgb, max_step=2 * SPEED_RANGE[1])["kept"]
    video = _red_disk_video([(8 + k, 16) for k in range(8)])
    red = (1.0, 0.0, 0.0)
    assert object_kept(video, red, max_step=3.0)["kept"]
    jumped = video.copy()
    jumped[0] = _red_disk_video([(24, 16)])[0]  # frame 0 (the image) puts it elsewhere
    assert not object_kept(jumped, red, max_step=3.0)["kept"]
    grown = _red_disk_video([(8 + k, 16) for k in range(8)], radius=6)
    grown[0] = video[0]
    assert object_kept(grown, red, max_step=3.0)["area_ratio_max"] > 2.0
    assert not object_kept(grown, red, max_step=3.0)["kept"]
    lost = video.copy()
    lost[5] = 0.0
    assert object_kept(lost, red, max_step=3.0) | {"max_step_px": 0, "area_ratio_min": 0, "area_ratio_max": 0} == {
        "kept": False, "present": False, "max_step_px": 0, "area_ratio_min": 0, "area_ratio_max": 0}

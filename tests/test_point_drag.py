"""Point drag wired end to end: the point loss inside guidance, the request from tracks, the CLI and the score."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import moft
from moft.eval.point_drag import mean_distance
from moft.front.cli import app
from moft.front.control import points_request
from moft.io.tracks import Tracks
from moft.method.points import PointRequest, point_loss, point_request
from moft.method.sampler import GuidanceConfig, GuidanceState, SamplerError, guidance_step
from moft.models.latents import text_conditioning
from moft.models.loading import denoiser

from conftest import all_channels, tiny_cogvideox, tiny_modelscope, tiny_wan, tiny_wan_4x

runner = CliRunner()
EXAMPLES = __import__("pathlib").Path(__file__).parents[1] / "examples"


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return moft.load_pipeline()


def _request(n_frames=8):
    """8 moving tracks + a pin + a track that leaves the frame after frame 2 (pixels of 32x32)."""
    rng = np.random.default_rng(0)
    start = rng.uniform(6, 26, size=(8, 2))
    step = rng.uniform(-1.5, 1.5, size=(8, 2))
    moving = start[:, None] + np.arange(n_frames)[None, :, None] * step[:, None]  # (8, F, 2)
    pin = np.full((1, n_frames, 2), 16.0)
    leaving = np.stack([20.0 + 8.0 * np.arange(n_frames), np.full(n_frames, 10.0)], -1)[None]  # x 20, 28, 36, ...
    pts = np.concatenate([moving, pin, leaving])  # (10, F, 2)
    return pts, np.ones(pts.shape[:2], bool)


def test_point_guidance_lowers_the_point_loss(pipe):
    """One guided step with the point loss alone moves the latents so the point loss falls (its gradient
    is the right one), for 10 tracks at once, a pin and a track leaving the frame."""
    net = denoiser(pipe)
    pts, vis = _request()
    req = point_request(pts, vis, (32, 32), list(range(8)))
    cond, _ = text_conditioning(pipe, "a red disk", "", 1.0)
    g = GuidanceConfig(points="dift", iterations=3, step_size=0.1, optimizer="adam", shared_kv=False, grad_mask="off")
    state = GuidanceState(None, g, cond, None, "up_blocks.1", 0.0, points=req, point_site="up_blocks.1")
    z = torch.randn(1, 8, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    z_after = guidance_step(net, z, torch.tensor(600), 5, state, ("point",))
    losses = [r["point"] for r in state.losses]
    assert losses[-1] < losses[0]
    assert all(r["regions"] is None for r in state.losses)
    assert not torch.equal(z_after, z)


def test_off_frame_points_get_no_gradient(pipe):
    """A track off the frame at every later frame counts for nothing: loss 0 and no latent change."""
    net = denoiser(pipe)
    pts = np.stack([np.r_[10.0, np.full(7, 60.0)], np.full(8, 10.0)], -1)[None]  # on the frame only at frame 0
    req = point_request(pts, np.ones((1, 8), bool), (32, 32), list(range(8)))
    cond, _ = text_conditioning(pipe, "a red disk", "", 1.0)
    g = GuidanceConfig(points="dift", iterations=1, step_size=0.1, shared_kv=False, grad_mask="off")
    state = GuidanceState(None, g, cond, None, "up_blocks.1", 0.0, points=req, point_site="up_blocks.1")
    z = torch.randn(1, 8, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    z_after = guidance_step(net, z, torch.tensor(600), 5, state, ("point",))
    assert state.losses[0]["point"] == 0.0 and torch.equal(z_after, z)


def test_sample_checks_the_point_settings(pipe):
    req = PointRequest(torch.zeros(8, 1, 2), torch.ones(8, 1, dtype=torch.bool), (32, 32))
    with pytest.raises(SamplerError, match="needs the requested points"):
        moft.sample(pipe, "a red disk", steps=2, guidance=GuidanceConfig(points="dift"))
    with pytest.raises(SamplerError, match="needs a target"):
        moft.sample(pipe, "a red disk", steps=25, guidance=GuidanceConfig(points="paper"), points=req)
    with pytest.raises(ValueError, match="points must be one of"):
        GuidanceConfig(points="dragnuwa")


def test_points_request_from_tracks_and_trajectory():
    """Tracks drawn on another size land on the same places of the output frame; a trajectory's point
    regions give the same request as the tracks they hold."""
    pts, vis = _request(4)
    tracks = Tracks(pts / 2 - 0.25, vis, (16, 16))  # the same tracks drawn on a 16x16 frame
    traj, req = points_request(tracks, "paper", 4, (32, 32), [0, 1, 2, 3])
    assert np.allclose(req.points.numpy(), np.transpose(pts, (1, 0, 2)), atol=1e-5)
    assert len(traj.regions) == 10 and all(r.tracks is not None for r in traj.regions)
    assert points_request(tracks, "off", 4, (32, 32), [0, 1, 2, 3])[1] is None
    with pytest.raises(ValueError, match="tracks have 4 frames"):
        points_request(tracks, "paper", 8, (32, 32), list(range(8)))


def test_mean_distance_against_a_planted_motion():
    """A textured patch moving 1 px a frame right: the requested path along it scores near 0, the
    opposite path about twice the travelled distance over the frame width."""
    rng = np.random.default_rng(0)
    patch = rng.uniform(0, 1, size=(8, 8, 3))
    video = np.full((8, 32, 32, 3), 0.5)
    for k in range(8):
        video[k, 12:20, 8 + k:16 + k] = patch
    right = np.stack([11.5 + np.arange(8.0), np.full(8, 15.5)], -1)
    left = np.stack([11.5 - np.arange(8.0), np.full(8, 15.5)], -1)
    assert mean_distance(video, right) < 0.02
    assert mean_distance(video, left) == pytest.approx(np.mean(2 * np.arange(8.0)) / 32, abs=0.03)


@pytest.mark.parametrize("content, message", [
    ([[{"x": 1, "y": "a"}]], "point 0"),
    ({"1": {"trajectory": [[1, 2, 3]]}}, "expected [x, y]"),
])
def test_cli_malformed_track_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "drag.json"
    path.write_text(json.dumps(content))
    res = runner.invoke(app, ["control", str(path), "--out", str(tmp_path / "o.gif")])
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and message in res.output and not (tmp_path / "o.gif").exists()


def test_cli_drags_the_objects_under_comfyui_tracks(tmp_path):
    """`moft control FILE` with a ComfyUI track file and no --points: the object under each point cut-and-dragged
    (the model's drag levers, the background not kept), no point loss."""
    path = tmp_path / "drag.json"
    path.write_text(json.dumps([[{"x": 20, "y": 32}, {"x": 44, "y": 32}], [{"x": 10, "y": 10}]]))
    res = runner.invoke(app, ["control", str(path), "--out", str(tmp_path / "o.gif"), "--tracks-size", "64", "64",
                              "--steps", "6", "--prompt", "a red disk"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o.report.json").read_text())
    g = report["guidance"]
    assert report["points"] is None and g["point_region"] == "segment" and g["keep"] == "off"
    assert g["method"] == "cut-drag" and g["start"] == "proxy"  # moft-tiny's drag levers


def test_cli_drags_comfyui_tracks_with_the_papers_point_drag(tmp_path):
    """`moft control FILE --points paper` with a ComfyUI track file drawn on 64x64 runs Eq. 9's point drag on the
    32x32 output."""
    path = tmp_path / "drag.json"
    path.write_text(json.dumps([[{"x": 20, "y": 32}, {"x": 44, "y": 32}], [{"x": 10, "y": 10}]]))
    out = tmp_path / "o.gif"
    res = runner.invoke(app, ["control", str(path), "--out", str(out), "--tracks-size", "64", "64", "--steps", "6",
                              "--iterations", "1", "--prompt", "a red disk", "--points", "paper"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o.report.json").read_text())
    assert report["points"] == {"mode": "paper", "tracks": 2} and report["guidance"]["point_region"] == "disk"
    assert any(r["point"] is not None for r in report["losses"]) and any(r["regions"] for r in report["losses"])


def test_the_example_track_file_drags_the_shipped_models_disk_whole():
    """README's point-drag command: examples/drag_disk_right.json (ComfyUI, a track from the disk's centre 10 px right)
    on moft-tiny with what a track file gets moves the disk about 10 px right in one piece, where the unguided video of
    the same noise leaves it."""
    import moft
    from moft.eval.metrics import split, track_centroid
    from moft.io.synthetic import COLORS

    pipe = moft.load_pipeline()
    tracks = moft.read_tracks(EXAMPLES / "drag_disk_right.json", num_frames=8, size=(32, 32))
    res = moft.control(pipe, tracks, prompt="a red disk standing still", channels=moft.default_channels(),
                       keep_source=True)
    moved, still = (track_centroid(v, color=COLORS["red"]) for v in (res.frames, res.source_frames))  # (F, 2) px
    assert 7.0 < moved[-1, 0] - moved[0, 0] < 13.0 and abs(moved[-1, 1] - moved[0, 1]) < 2.0
    assert abs(still[-1, 0] - still[0, 0]) < 2.0
    assert not split(res.frames, res.source_frames, COLORS["red"])


def _every_channel(pipe):
    """Every channel of the pipeline's default site as motion channels (a tiny random build ships none)."""
    from moft.front.extract import site_channels
    from moft.models.adapters import architecture_of

    return all_channels(site_channels(pipe), architecture_of(denoiser(pipe)).name)


def _tiny(name: str):
    """A tiny random build of each pipeline family, sized 32x32 (9 frames on the 4k+1 VAEs, 8 otherwise)."""
    from moft.models import tiny
    from moft.models.record import ModelRecord

    make = {"wan": tiny_wan, "wan 4x VAE": tiny_wan_4x, "cogvideox": tiny_cogvideox, "modelscope": tiny_modelscope,
            "wan 2.2 ti2v": tiny.build_tiny_wan_i2v, "wan 2.1 i2v": tiny.build_tiny_wan21_i2v, "cogvideox i2v": tiny.build_tiny_cogvideox_i2v,
            "svd": tiny.build_tiny_svd, "sparsectrl": tiny.build_tiny_sparsectrl}[name]
    pipe = make(seed=0)
    pipe.set_progress_bar_config(disable=True)
    frames = 8 if name in ("modelscope", "svd", "sparsectrl") else 9
    pipe.moft_record = ModelRecord(frames=frames, height=32, width=32)
    return pipe, frames


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("name", ["wan", "wan 4x VAE", "cogvideox", "modelscope", "wan 2.2 ti2v", "wan 2.1 i2v",
                                  "cogvideox i2v", "svd", "sparsectrl"])
def test_tracks_drag_on_every_pipeline_family(name):
    """A track (what every track file is read into) on each tiny random build: with a drag target the object under
    the point is dragged (on image-to-video, the image's red square: the drag proxy shows it 8 px on at the last
    frame; SVD does not invert, so it takes the paper's curves), and the paper's point drag runs Eq. 9's losses
    through the architecture's own capture, the point loss included."""
    from moft.models.image import requires_image
    from moft.models.pipeline import pipeline_record

    pipe, f = _tiny(name)
    image = np.full((32, 32, 3), (40, 60, 80), np.uint8)
    image[10:20, 8:18] = (230, 30, 30)  # a red square, centre (12.5, 14.5) px
    image = image if requires_image(pipe) else None
    path = np.stack([np.linspace(12.5, 20.5, f), np.full(f, 14.5)], -1)[None]  # (1, F, 2): its centre, 8 px right
    tracks = Tracks(path, np.ones((1, f), bool), (32, 32))
    kw = dict(prompt="a red disk", steps=6, seed=0, channels=_every_channel(pipe), image=image)
    plain = moft.control(pipe, tracks, target_kind="curves" if name == "svd" else "drag", **kw)
    assert plain.frames.shape == (f, 32, 32, 3) and np.isfinite(plain.frames).all()
    if image is not None and name != "svd":  # the image's square, grown from the point, moved along the track
        red = (plain.proxy_frames[..., 0] > 0.8) & (plain.proxy_frames[..., 1] < 0.2)  # (F, H, W)
        assert red[0, 10:20, 8:18].all() and red[-1, 10:20, 16:26].all() and red[-1].sum() == 100
    paper = moft.control(pipe, tracks, guidance=moft.default_guidance(record=pipeline_record(pipe), points="paper"),
                         **kw)
    kinds = [tuple(sorted(r)) for r in paper.report["losses"]] if "losses" in paper.report else None
    assert paper.result.counts["backwards"] > 0 and all(np.isfinite(r["loss"]) for r in paper.report["losses"]), kinds
    assert any("point" in r for r in paper.report["losses"]), kinds  # the point loss ran on this architecture

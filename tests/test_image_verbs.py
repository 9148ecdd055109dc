"""The verbs on an image (issue 25): extract an image's animation, camera pan and zoom of an image, motion transfer
from a reference clip onto an image. Tiny random TI2V build, 2-3 steps, 9 frames of 32x32."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from moft.models.image import ImageInputError, image_conditioning
from moft.models.latents import decode_latents, encode_video
from moft.models.tiny import build_tiny_wan, build_tiny_wan_i2v

from conftest import all_channels

pytestmark = pytest.mark.usefixtures("single_thread")

FRAMES, SIZE, STEPS = 9, 32, 2


def _image(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A coloured square on a dark background, with a ramp so a shift shows everywhere."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 40, np.uint8)
    img[..., 2] = np.linspace(0, 200, size).astype(np.uint8)[None, :]  # blue grows to the right
    img[size // 4:size // 2, size // 3:2 * size // 3] = rng.integers(0, 255, 3)
    return img


def _clip(direction: int = 1) -> np.ndarray:
    """``(F, 32, 32, 3)`` uint8: a white square moving 2 px a frame along x (``direction`` +1 right, -1 left)."""
    frames = np.full((FRAMES, SIZE, SIZE, 3), 30, np.uint8)
    for f in range(FRAMES):
        x = 8 + direction * 2 * f + (8 if direction < 0 else 0)
        frames[f, 12:20, x:x + 8] = 255
    return frames


@pytest.fixture(scope="module")
def i2v_folder(tmp_path_factory):
    """The tiny TI2V pipeline as a model folder with a ``moft.json`` (9 frames of 32x32, no CFG: fast)."""
    folder = tmp_path_factory.mktemp("tiny-i2v")
    build_tiny_wan_i2v(seed=0).save_pretrained(folder)
    (folder / "moft.json").write_text(json.dumps({"frames": FRAMES, "height": SIZE, "width": SIZE,
                                                  "guidance_scale": 1.0, "prompt": "a red disk"}))
    return folder


@pytest.fixture(scope="module")
def pipe(i2v_folder):
    from moft.models.loading import load_pipeline

    return load_pipeline(str(i2v_folder))


@pytest.fixture(scope="module")
def t2v_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-t2v")
    build_tiny_wan(seed=0).save_pretrained(folder)
    (folder / "moft.json").write_text(json.dumps({"frames": FRAMES, "height": SIZE, "width": SIZE,
                                                  "guidance_scale": 1.0}))
    return folder


def _cli(*args):
    from typer.testing import CliRunner

    from moft.front.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


# 1. extract: the features and MOFT of the image's animation

@pytest.fixture(scope="module")
def animation(pipe):
    import moft

    return moft.extract(pipe, prompt="a red disk moving right", image=_image(1), steps=STEPS, timestep=500, seed=3)


def test_extract_from_an_image_starts_at_the_images_vae_round_trip(pipe, animation):
    z = encode_video(pipe, _image(1)[None])  # (1, 1, C, h, w): the image's latent, by the VAE alone
    round_trip = decode_latents(pipe, z)[0, 0]  # (H, W, 3)
    assert animation.frames.shape == (FRAMES, SIZE, SIZE, 3)
    assert np.abs(animation.frames[0] - round_trip).max() < 2e-3
    assert np.abs(animation.frames[1:] - round_trip).max() > 0.05  # the other frames were generated, not pasted


def test_extract_from_an_image_takes_the_denoising_step_nearest_the_timestep_and_records_the_image(pipe, animation):
    pipe.scheduler.set_timesteps(STEPS)
    ts = [float(t) for t in pipe.scheduler.timesteps]
    index = int(np.argmin([abs(t - 500) for t in ts]))
    assert animation.meta["denoising_step"] == index and animation.meta["timestep"] == pytest.approx(ts[index])
    assert animation.meta["image"] == {"height": SIZE, "width": SIZE}
    assert animation.features.shape == (FRAMES, 128, 8, 8) and animation.moft.shape == (FRAMES, 128, 16, 16)


def test_extract_features_are_those_of_the_image_given(pipe, animation):
    import moft

    other = moft.extract(pipe, prompt="a red disk moving right", image=_image(2), steps=STEPS, timestep=500, seed=3)
    assert (animation.features - other.features).abs().max() > 1e-3
    again = moft.extract(pipe, prompt="a red disk moving right", image=np.kron(_image(1), np.ones((2, 2, 1), np.uint8)),
                         steps=STEPS, timestep=500, seed=3)  # the same picture at 64x64, fitted to the run's 32x32
    torch.testing.assert_close(again.features, animation.features, atol=1e-4, rtol=0)


def test_extract_refuses_an_image_on_text_to_video_none_on_image_to_video_and_an_image_with_a_video(pipe, t2v_folder):
    import moft
    from moft.io.video import VideoError
    from moft.models.loading import load_pipeline

    t2v = load_pipeline(str(t2v_folder))

    with pytest.raises(ImageInputError, match="animates no image; image-to-video models: wan-ti2v"):
        moft.extract(t2v, prompt="a red disk", image=_image(), steps=1)
    with pytest.raises(ImageInputError, match="animates an image: give one"):
        moft.extract(pipe, prompt="a red disk", steps=1)
    with pytest.raises(VideoError, match="give image with prompt"):
        moft.extract(pipe, video=_clip(), image=_image(), steps=1)


def test_extract_inverts_a_video_on_an_image_model_as_the_animation_of_its_own_frame_zero(pipe):
    import moft
    from moft.method.inversion import reference_features

    clip = _clip()
    ex = moft.extract(pipe, video=clip, steps=4, timestep=200)
    by_hand = reference_features(pipe, clip, timestep=200, num_steps=4, height=SIZE, width=SIZE,
                                 image_cond={"first_frame": encode_video(pipe, clip[:1])})  # frame 0's latent, as TI2V
    torch.testing.assert_close(ex.features, by_hand.features[0].float())
    plain = reference_features(pipe, clip, timestep=200, num_steps=4, height=SIZE, width=SIZE)  # no image at all
    assert (ex.features - plain.features[0]).abs().max() > 1e-3


def test_the_command_line_extracts_an_image_with_figure_and_video(i2v_folder, tmp_path):
    from safetensors import safe_open

    Image.fromarray(np.kron(_image(1), np.ones((3, 3, 1), np.uint8))).save(tmp_path / "big.png")  # 96x96: fitted
    out = tmp_path / "f.safetensors"
    r = _cli("extract", "--image", tmp_path / "big.png", "--prompt", "a red disk moving right", "--model", i2v_folder,
             "--steps", STEPS, "--out", out, "--figure", tmp_path / "f.png", "--save-video", tmp_path / "f.gif")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "f.gif").stat().st_size > 0
    with safe_open(str(out), framework="pt") as fh:
        meta = json.loads(fh.metadata()["moft_extract"])
        assert tuple(fh.get_tensor("features").shape) == (FRAMES, 128, 8, 8)
    assert meta["image"] == {"height": SIZE, "width": SIZE} and meta["image_file"] == str(tmp_path / "big.png")


def test_the_command_line_refuses_image_with_video_and_on_text_to_video_in_controls_own_line(i2v_folder, t2v_folder,
                                                                                             tmp_path):
    Image.fromarray(_image()).save(tmp_path / "i.png")
    (tmp_path / "t.json").write_text(json.dumps({"version": 1, "regions": [{"mask": "all", "direction": "right",
                                                                             "speed": 0.03}]}))
    clip = tmp_path / "c.gif"
    from moft.io.video import write_video

    write_video(clip, _clip())
    r = _cli("extract", "--image", tmp_path / "i.png", "--video", clip, "--model", i2v_folder, "--out",
             tmp_path / "a.safetensors")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--image" in r.output and "--video" in r.output, r.output
    r = _cli("extract", "--image", tmp_path / "i.png", "--model", i2v_folder, "--out", tmp_path / "a.safetensors")
    assert r.exit_code == 2 and "--image needs --prompt" in r.output, r.output
    extract = _cli("extract", "--image", tmp_path / "i.png", "--prompt", "a red disk", "--model", t2v_folder,
                   "--steps", 1, "--out", tmp_path / "a.safetensors")
    control = _cli("control", tmp_path / "t.json", "--image", tmp_path / "i.png", "--model", t2v_folder,
                   "--steps", 1, "--iterations", 0, "--out", tmp_path / "a.gif")
    assert extract.exit_code == control.exit_code == 2 and "Traceback" not in extract.output
    assert extract.output == control.output and "animates no image; image-to-video models: wan-ti2v" in extract.output
    assert not list(tmp_path.glob("a.*"))


# 2. camera pan and zoom of an image: the drag proxy is the image itself shifted / scaled

def _shifted(image: np.ndarray, dx: int) -> np.ndarray:
    """``image`` moved ``dx`` px right, the left edge column repeated into the gap (closed form)."""
    cols = np.clip(np.arange(image.shape[1]) - dx, 0, image.shape[1] - 1)
    return image[:, cols]


def _scaled(image: np.ndarray, s: float) -> np.ndarray:
    """``image`` scaled by ``s`` about its centre, bilinear with edges repeated (reference implementation)."""
    h, w = image.shape[:2]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    y = np.clip(cy + (np.arange(h) - cy) / s, 0, h - 1)
    x = np.clip(cx + (np.arange(w) - cx) / s, 0, w - 1)
    y0, x0 = np.minimum(np.floor(y).astype(int), h - 2), np.minimum(np.floor(x).astype(int), w - 2)
    fy, fx = (y - y0)[:, None, None], (x - x0)[None, :, None]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x0 + 1] * fx
    bottom = image[y0 + 1][:, x0] * (1 - fx) + image[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


PAN = {"version": 1, "frames": FRAMES, "regions": [{"mask": "all", "direction": "right", "speed": 1 / 32}]}
ZOOM = {"version": 1, "frames": FRAMES, "regions": [{"mask": "all", "zoom": 1.5}]}


def test_the_drag_proxy_of_an_image_pan_is_the_image_shifted():
    from moft.io.trajectory import parse_trajectory
    from moft.method.drag import drag_video
    from moft.models.image import still_frames

    image = _image(4)
    proxy = drag_video(still_frames(image, FRAMES), parse_trajectory(PAN))  # 1/32 of 32 px: 1 px a frame
    for f in range(FRAMES):
        np.testing.assert_allclose(proxy[f], _shifted(image, f) / 255.0, atol=1e-6)


def test_the_drag_proxy_of_an_image_zoom_is_the_image_scaled_about_its_centre():
    from moft.io.trajectory import parse_trajectory
    from moft.method.drag import drag_video
    from moft.models.image import still_frames

    image = _image(4)
    proxy = drag_video(still_frames(image, FRAMES), parse_trajectory(ZOOM))
    for f in (0, 4, 8):
        s = 1 + 0.5 * f / (FRAMES - 1)  # the trajectory format's zoom ramp
        np.testing.assert_allclose(proxy[f], _scaled(image / 255.0, s), atol=0.02)  # cv2: 1/32-px weights


@pytest.mark.parametrize("request_", [PAN, ZOOM], ids=["pan", "zoom"])
def test_control_pans_and_zooms_an_image_from_the_image_itself(pipe, request_):
    from moft.front.control import control
    from moft.io.trajectory import parse_trajectory
    from moft.method.settings import GuidanceConfig

    image = _image(4)
    g = GuidanceConfig(steps=(0, 2), iterations=1, step_size=0.1, loss="per_position", optimizer="adam",
                       distance="cosine", site="blocks.3")
    res = control(pipe, parse_trajectory(request_), prompt="a red disk", channels=all_channels(128), image=image,
                  steps=3, guidance=g, target_kind="drag", guidance_scale=1.0)
    if request_ is PAN:
        for f in range(FRAMES):
            np.testing.assert_allclose(res.proxy_frames[f], _shifted(image, f) / 255.0, atol=1e-6)
    assert res.target.masks.all()  # a camera move: the whole frame is the region
    assert res.result.counts["backwards"] == 2
    cond = image_conditioning(pipe, image, num_frames=FRAMES)
    assert torch.equal(res.result.latents[:, :1], cond["first_frame"])  # frame 0 is the image


def test_cut_and_drag_on_an_image_drags_the_image_and_samples_no_source_unless_it_keeps_one(pipe):
    """Time-to-Move's I2V recipe: the proxy is the image held still and dragged (not an unguided video of it), the run
    starts from it noised with the run's own noise, and without ``keep`` no unguided video is sampled first: the
    denoiser runs only the run's own CFG steps from the first guided step on (2 forwards a step)."""
    from moft.front.control import control
    from moft.io.trajectory import parse_trajectory
    from moft.method.drag import drag_video
    from moft.method.keep import cut_drag_start
    from moft.method.settings import GuidanceConfig
    from moft.models.image import still_frames
    from moft.models.latents import initial_noise

    image = _image(5)
    traj = parse_trajectory(PAN)
    g = GuidanceConfig(steps=(1, 3), start="proxy", release=2, method="cut-drag")
    calls = []
    hook = pipe.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        res = control(pipe, traj, prompt="a red disk", image=image, steps=4, guidance=g, target_kind="drag",
                      guidance_scale=2.0)
    finally:
        hook.remove()
    want = drag_video(still_frames(image, FRAMES), traj)  # (F, H, W, 3)
    np.testing.assert_allclose(res.proxy_frames, want, atol=1e-6)
    assert len(calls) == res.result.counts["forwards"] == 2 * 3  # steps 1..3 under CFG; no unguided source run
    noise = initial_noise(pipe, num_frames=FRAMES, height=SIZE, width=SIZE, seed=0)
    z0 = encode_video(pipe, (want * 255).round().astype(np.uint8))
    assert torch.allclose(res.result.initial_latents[:, 1:], noise[:, 1:])  # the run's noise, frame 0 the image's
    kept = control(pipe, traj, prompt="a red disk", image=image, steps=4, guidance_scale=2.0, target_kind="drag",
                   guidance=GuidanceConfig(steps=(1, 3), start="proxy", release=2, method="cut-drag", keep="latents"),
                   keep_source=True)
    assert kept.source_frames is not None  # keeping the background needs the unguided video's latents
    np.testing.assert_allclose(kept.proxy_frames, want, atol=1e-6)  # still the image dragged
    assert cut_drag_start(pipe, z0, noise, 500).shape == noise.shape


# 3. motion transfer from a reference clip onto an image

def test_a_reference_clips_motion_target_comes_from_the_clip_whatever_the_image(pipe):
    from moft.front.control import control
    from moft.io.trajectory import parse_trajectory
    from moft.method.settings import GuidanceConfig
    from moft.method.targets import reference_target

    traj = parse_trajectory({"version": 1, "frames": FRAMES, "regions": [{"mask": "all", "direction": "right",
                                                                          "speed": 0.03}]})
    g = GuidanceConfig(steps=(0, 2), iterations=1, step_size=0.1, loss="per_position", optimizer="adam",
                       distance="cosine", site="blocks.3")
    runs = [control(pipe, traj, prompt="a red disk", channels=all_channels(128), image=_image(seed), reference=clip,
                    steps=3, guidance=g, guidance_scale=1.0) for seed, clip in [(1, _clip()), (2, _clip()), (1, _clip(-1))]]
    one, two, left = (r.target for r in runs)
    torch.testing.assert_close(one.maps, two.maps)  # the image animated does not enter the target
    assert (one.maps - left.maps).abs().max() > 1e-3  # the clip does
    by_hand = reference_target(pipe, _clip(), channels=all_channels(128), num_steps=3, site="blocks.3",
                               image_cond={"first_frame": encode_video(pipe, _clip()[:1])})  # the clip's frame 0
    torch.testing.assert_close(one.maps, by_hand.maps)
    for res, seed in zip(runs, (1, 2, 1)):  # each video starts from its own image
        first = image_conditioning(pipe, _image(seed), num_frames=FRAMES)["first_frame"]
        assert torch.equal(res.result.latents[:, :1], first)


def test_the_command_line_transfers_a_clips_motion_onto_an_image_and_refuses_bad_combinations(i2v_folder, t2v_folder,
                                                                                              tmp_path):
    from moft.io.video import write_video

    all_channels(128).save(tmp_path / "ch.safetensors")
    Image.fromarray(_image(2)).save(tmp_path / "i.png")
    write_video(tmp_path / "c.gif", _clip())
    (tmp_path / "t.json").write_text(json.dumps({"version": 1, "regions": [{"mask": "all", "direction": "right",
                                                                             "speed": 0.03}]}))
    common = ["control", tmp_path / "t.json", "--channels", tmp_path / "ch.safetensors", "--steps", 2,
              "--guided-steps", "0:1", "--iterations", 1, "--loss", "per_position", "--reference", tmp_path / "c.gif"]
    r = _cli(*common, "--model", i2v_folder, "--image", tmp_path / "i.png", "--out", tmp_path / "o.gif")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o.report.json").read_text())
    assert report["target"]["source"] == "reference" and report["image"] == {"height": SIZE, "width": SIZE}
    assert report["reference"] == str(tmp_path / "c.gif") and (tmp_path / "o.gif").stat().st_size > 0
    bad = [(["--model", i2v_folder], "animates an image: give one"),  # the clip gives the motion, not the image
           (["--model", t2v_folder, "--image", tmp_path / "i.png"], "animates no image; image-to-video models"),
           (["--model", i2v_folder, "--image", tmp_path / "i.png", "--save-proxy"], "--save-proxy: only a drag target")]
    for extra, message in bad:
        r = _cli(*common, *extra, "--out", tmp_path / "x.gif")
        assert r.exit_code == 2 and message in r.output and r.output.count("\n") == 1, (extra, r.output)
        assert not list(tmp_path.glob("x.*"))


def test_transfer_drag_drags_the_image_along_the_clips_measured_motion(pipe):
    """``transfer="drag"``: the clip's square moves 2 px a frame to the right (planted), so the image's region is
    dragged exactly as a trajectory drawn by hand at 2/32 of the frame a frame would drag it (the reference
    implementation: ``drag_video`` of that trajectory), and no MOFT target is made."""
    from moft.front.control import ControlError, control
    from moft.io.trajectory import parse_trajectory
    from moft.method.drag import drag_video
    from moft.method.settings import GuidanceConfig
    from moft.models.image import still_frames

    clip = np.roll(_clip(), -4, axis=2)  # the square at x 4..12, y 12..20 in frame 0, at x 20..28 in frame 8
    box = {"box": [0.125, 0.375, 0.375, 0.625]}
    traj = parse_trajectory({"version": 1, "frames": 3, "regions": [{"mask": box, "direction": "up", "speed": 0.1}]})
    g = GuidanceConfig(steps=(1, 3), start="proxy", release=2, method="cut-drag", transfer="drag")
    res = control(pipe, traj, prompt="a red disk", image=_image(5), reference=clip, steps=4, guidance=g,
                  target_kind="drag", guidance_scale=1.0)
    by_hand = parse_trajectory({"version": 1, "frames": FRAMES, "regions": [{"mask": box, "direction": "right",
                                                                             "speed": 2 / SIZE}]})
    np.testing.assert_allclose(res.proxy_frames, drag_video(still_frames(_image(5), FRAMES), by_hand), atol=0.02)
    copied = np.array(res.report["copied_paths"][0])  # (F, 2) the region's path in the clip, frame fractions
    assert np.abs((copied - copied[0]) * SIZE - [[2 * f, 0] for f in range(FRAMES)]).max() < 0.1
    assert res.target is None and res.report["guidance"]["transfer"] == "drag"
    points = parse_trajectory({"version": 1, "frames": FRAMES, "regions": [{"points": [[0.3, 0.5], [0.5, 0.5]],
                                                                            "radius": 0.05}]})
    with pytest.raises(ControlError, match="point regions follow their own tracks"):
        control(pipe, points, prompt="a red disk", image=_image(5), reference=_clip(), steps=4, guidance=g)
    with pytest.raises(ControlError, match="transfer drag drags the clip's measured motion"):
        control(pipe, traj, prompt="a red disk", image=_image(5), reference=_clip(), steps=4,
                guidance=GuidanceConfig(steps=(1, 3), start="proxy", release=2, method="cut-drag"))


def test_the_command_line_copies_a_clips_motion_by_dragging_with_transfer_drag(i2v_folder, tmp_path):
    from moft.io.video import read_video, write_video

    Image.fromarray(_image(2)).save(tmp_path / "i.png")
    write_video(tmp_path / "c.gif", _clip(-1))  # the square 2 px a frame to the left
    (tmp_path / "t.json").write_text(json.dumps({"version": 1, "regions": [{"mask": "all", "direction": "right",
                                                                             "speed": 0.03}]}))
    r = _cli("control", tmp_path / "t.json", "--model", i2v_folder, "--image", tmp_path / "i.png", "--steps", 3,
             "--reference", tmp_path / "c.gif", "--transfer", "drag", "--start-from", "proxy", "--method", "cut-drag",
             "--release", 2, "--guided-steps", "1:2", "--save-proxy", "--out", tmp_path / "o.gif")  # a curves folder
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o.report.json").read_text())
    assert report["guidance"]["transfer"] == "drag" and report["target"] is None and report["reference"]
    proxy = read_video(tmp_path / "o.proxy.gif")  # the whole image panned by the clip's motion: mostly still
    assert proxy.shape == (FRAMES, SIZE, SIZE, 3) and len(report["copied_paths"]) == 1
    r = _cli("control", tmp_path / "t.json", "--model", i2v_folder, "--image", tmp_path / "i.png", "--steps", 3,
             "--reference", tmp_path / "c.gif", "--transfer", "sideways", "--out", tmp_path / "x.gif")
    assert r.exit_code == 2 and "--transfer" in r.output and r.output.count("\n") == 1, r.output
    assert not list(tmp_path.glob("x.*"))


def test_the_committed_example_image_is_what_its_script_renders(tmp_path):
    import runpy
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    runpy.run_path(str(root / "scripts" / "make_example_image.py"))["main"](tmp_path / "disk.png")
    committed = np.asarray(Image.open(root / "examples" / "red_disk.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "disk.png")), committed)
    assert committed.shape == (SIZE, SIZE, 3) and (committed[18, 11] == [235, 38, 38]).all()  # red under the region

"""moft.models.image: image-to-video conditioning equals the stock pipelines' denoiser input (tiny random builds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from moft.models.adapters import call_denoiser
from moft.models.image import ImageInputError, fit_image, image_conditioning, image_input_of
from moft.models.latents import encode_prompt, initial_noise
from moft.models.tiny import build_tiny_wan, build_tiny_wan21_i2v, build_tiny_wan_i2v

from conftest import all_channels

FRAMES = 9


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((32, 32, 3), 40, np.uint8)
    img[8:20, 10:22] = rng.integers(0, 255, 3)  # a coloured square on a dark background
    return img


def _stock_first_call(pipe, image, z):
    """The stock pipeline's first transformer call: (hidden_states, timestep, output), from forward hooks."""
    seen = {}

    def hook(module, args, kwargs, output):
        if not seen:
            seen.update(hidden=kwargs["hidden_states"].clone(), timestep=kwargs["timestep"].clone(),
                        out=output[0].clone(), image=kwargs.get("encoder_hidden_states_image"))

    handle = pipe.transformer.register_forward_hook(hook, with_kwargs=True)
    try:
        # num_frames 8: the pipeline rounds it up to 9 (a count the VAE without temporal compression takes)
        pipe(image=Image.fromarray(image), prompt="a red disk moving left", height=32, width=32, num_frames=FRAMES - 1,
             num_inference_steps=2, guidance_scale=1.0, latents=z.permute(0, 2, 1, 3, 4).contiguous(),
             output_type="latent")
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("build", [build_tiny_wan_i2v, build_tiny_wan21_i2v], ids=["wan-ti2v", "wan-i2v"])
def test_call_denoiser_with_the_image_is_the_stock_pipelines_first_call(build):
    pipe = build(seed=0)
    image = _image()
    z = initial_noise(pipe, num_frames=FRAMES, height=32, width=32, seed=3)  # (1, F, C, h, w)
    stock = _stock_first_call(pipe, image, z)
    t = pipe.scheduler.timesteps[0] if len(pipe.scheduler.timesteps) else None
    cond = {"encoder_hidden_states": encode_prompt(pipe, "a red disk moving left"),
            **image_conditioning(pipe, image, num_frames=FRAMES)}
    with torch.no_grad():
        out = call_denoiser(pipe.transformer, z, t, cond)  # (1, F, C, h, w)
    assert torch.allclose(out.permute(0, 2, 1, 3, 4), stock["out"], atol=1e-5)


def test_the_first_frame_tokens_see_timestep_zero_and_the_image_latent():
    pipe = build_tiny_wan_i2v(seed=0)
    z = initial_noise(pipe, num_frames=FRAMES, height=32, width=32, seed=1)
    stock = _stock_first_call(pipe, _image(), z)
    tokens = 8 * 8  # 16x16 latents in 2x2 patches
    assert (stock["timestep"][0, :tokens] == 0).all() and (stock["timestep"][0, tokens:] > 0).all()
    cond = image_conditioning(pipe, _image(), num_frames=FRAMES)
    assert torch.allclose(stock["hidden"][:, :, 0], cond["first_frame"][:, 0], atol=1e-6)  # frame 0 is the image
    assert torch.equal(stock["hidden"][:, :, 1:], z.permute(0, 2, 1, 3, 4)[:, :, 1:])  # the rest is the noise


def test_the_first_frame_latent_decodes_to_the_image_within_the_vae_round_trip():
    pipe = build_tiny_wan_i2v(seed=0)
    cond = image_conditioning(pipe, _image(), num_frames=FRAMES)
    assert cond["first_frame"].shape == (1, 1, 4, 16, 16)
    # the latent is the VAE's deterministic encoding: encoding twice gives the same latent
    assert torch.equal(cond["first_frame"], image_conditioning(pipe, _image(), num_frames=FRAMES)["first_frame"])


def test_a_text_to_video_pipeline_refuses_an_image_naming_the_image_models():
    pipe = build_tiny_wan(seed=0)
    assert image_input_of(pipe) is None
    with pytest.raises(ImageInputError, match="takes no image.*wan-ti2v"):
        image_conditioning(pipe, _image(), num_frames=FRAMES)


def test_fit_image_follows_the_clip_rule_and_refuses_what_cannot_be_animated():
    wide = np.zeros((90, 160, 3), np.uint8)
    wide[:, 60:100] = 255  # a white band in the centre survives the centre crop
    out = fit_image(wide, 32, 32, "crop")
    assert out.shape == (32, 32, 3) and out[16, 16].min() > 200
    with pytest.raises(ImageInputError, match="too small"):
        fit_image(np.zeros((1, 1, 3), np.uint8), 32, 32)
    with pytest.raises(ImageInputError, match=r"\(H, W, 3\)"):
        fit_image(np.zeros((32, 32), np.uint8), 32, 32)


@pytest.mark.parametrize("build", [build_tiny_wan_i2v, build_tiny_wan21_i2v], ids=["wan-ti2v", "wan-i2v"])
def test_the_unguided_moft_sampler_is_the_stock_image_to_video_pipeline(build):
    from moft.method.sampler import sample

    pipe = build(seed=0)
    image = _image(1)
    z = initial_noise(pipe, num_frames=FRAMES, height=32, width=32, seed=5)
    stock = pipe(image=Image.fromarray(image), prompt="a red disk moving left", height=32, width=32,
                 num_frames=FRAMES - 1, num_inference_steps=3, guidance_scale=4.0,
                 latents=z.permute(0, 2, 1, 3, 4).contiguous(), output_type="latent").frames  # (1, C, F, h, w)
    ours = sample(pipe, "a red disk moving left", image=image, latents=z, steps=3, guidance_scale=4.0,
                  num_frames=FRAMES, height=32, width=32)
    assert torch.allclose(ours.latents.permute(0, 2, 1, 3, 4), stock, atol=1e-5)


def test_sample_refuses_a_missing_or_misfit_image_and_an_image_on_text_to_video():
    from moft.method.sampler import SamplerError, sample

    with pytest.raises(SamplerError, match="animates an image"):
        sample(build_tiny_wan_i2v(), "a red disk", steps=1)
    with pytest.raises(SamplerError, match=r"needs \(32, 32, 3\)"):
        sample(build_tiny_wan_i2v(), "a red disk", steps=1, height=32, width=32, num_frames=FRAMES,
               image=np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(SamplerError, match="takes no image"):
        sample(build_tiny_wan(), "a red disk", steps=1, height=32, width=32, num_frames=FRAMES, image=_image())


@pytest.fixture(scope="module")
def i2v_folder(tmp_path_factory):
    """The tiny TI2V pipeline as a model folder with a ``moft.json`` (9 frames of 32x32, as moft-tiny-wan)."""
    import json

    folder = tmp_path_factory.mktemp("tiny-i2v")
    build_tiny_wan_i2v(seed=0).save_pretrained(folder)
    (folder / "moft.json").write_text(json.dumps({"frames": FRAMES, "height": 32, "width": 32, "guidance_scale": 1.0}))
    return folder


def test_control_drags_the_images_own_regions_and_keeps_frame_zero(i2v_folder):
    from moft.front.control import control
    from moft.io.trajectory import parse_trajectory
    from moft.method.settings import GuidanceConfig
    from moft.models.loading import load_pipeline

    pipe = load_pipeline(str(i2v_folder))
    traj = parse_trajectory({"version": 1, "frames": FRAMES, "regions": [
        {"mask": {"box": [0.25, 0.2, 0.7, 0.65]}, "direction": "right", "speed": 0.3}]})
    g = GuidanceConfig(steps=(0, 2), iterations=1, step_size=0.1, loss="per_position", optimizer="adam",
                       distance="cosine", site="blocks.3")
    res = control(pipe, traj, prompt="a red disk", channels=all_channels(128), image=_image(2), steps=3, guidance=g,
                  target_kind="drag", keep_source=True)
    assert res.frames.shape == (FRAMES, 32, 32, 3) and res.source_frames.shape == (FRAMES, 32, 32, 3)
    # the drag proxy is the image itself, dragged: its frame 0 is the image
    assert np.abs(res.proxy_frames[0] * 255 - _image(2)).max() < 1
    assert res.report["image"] == {"height": 32, "width": 32}
    # no unguided video was sampled for the target: one loss backward per guided step, and the forwards of
    # 3 sampling steps + 2 loss passes + the source branch (2 guided steps on) + the inversion to t = 200
    assert res.result.counts["backwards"] == 2
    # frame 0 of the video is the image's latent
    cond = image_conditioning(pipe, _image(2), num_frames=FRAMES)
    assert torch.equal(res.result.latents[:, :1], cond["first_frame"])


def test_control_refuses_an_image_on_text_to_video_and_none_on_image_to_video(i2v_folder):
    from moft.front.control import ControlError, control
    from moft.method.settings import GuidanceConfig
    from moft.models.loading import load_pipeline

    with pytest.raises(ControlError, match="animates no image; image-to-video models: wan-ti2v"):
        control(load_pipeline("moft-tiny-wan"), None, prompt="a red disk", image=_image(), steps=1,
                guidance=GuidanceConfig(iterations=0))
    with pytest.raises(ControlError, match="animates an image"):
        control(load_pipeline(str(i2v_folder)), None, prompt="a red disk", steps=1, guidance=GuidanceConfig(iterations=0))


def _cli(*args):
    from typer.testing import CliRunner

    from moft.front.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_command_line_animates_an_image_and_refuses_bad_images_in_one_line(i2v_folder, tmp_path):
    import json

    all_channels(128).save(tmp_path / "ch.safetensors")
    Image.fromarray(np.kron(_image(2), np.ones((3, 3, 1), np.uint8))).save(tmp_path / "big.png")  # 96x96: fitted
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"version": 1, "regions": [
        {"mask": {"box": [0.25, 0.2, 0.7, 0.65]}, "direction": "right", "speed": 0.3}]}))
    common = ["control", traj, "--model", i2v_folder, "--channels", tmp_path / "ch.safetensors", "--steps", 2,
              "--guided-steps", "0:1", "--iterations", 1, "--target-kind", "drag", "--loss", "per_position"]
    r = _cli(*common, "--image", tmp_path / "big.png", "--out", tmp_path / "o.gif")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o.report.json").read_text())["image"] == {"height": 32, "width": 32}
    r = _cli(*common, "--image", tmp_path / "big.png", "--out", tmp_path / "p.gif", "--preview")
    assert r.exit_code == 0 and (tmp_path / "p.preview.png").is_file() and "the image" in r.output, r.output
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for image, message in [(tmp_path / "bad.png", "unreadable image"), (tmp_path / "none.png", "no such image")]:
        r = _cli(*common, "--image", image, "--out", tmp_path / "x.gif")
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "x.gif").exists()
    r = _cli(*common[:3], "moft-tiny-wan", "--steps", 2, "--iterations", 0, "--image", tmp_path / "big.png",
             "--out", tmp_path / "y.gif")
    assert r.exit_code == 2 and "image-to-video models: wan-ti2v" in r.output and not (tmp_path / "y.gif").exists()

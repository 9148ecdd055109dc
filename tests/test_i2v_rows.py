"""The image-to-video rows beyond Wan (issue 25): CogVideoX-I2V and SVD equal their stock pipelines from the same
seed, noise and image (tiny random builds), their full-size denoisers take moft's call on the meta device, and
``moft control --image`` runs on each tiny build saved to a folder."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffusers
from moft.method.capture import capture
from moft.models.adapters import call_denoiser, default_site
from moft.models.image import ImageInputError, image_conditioning, image_input_of
from moft.models.latents import encode_prompt, initial_noise
from moft.models.pipeline import default_guidance_scale
from moft.models.tiny import build_tiny_cogvideox_i2v, build_tiny_sparsectrl, build_tiny_svd

from conftest import all_channels

pytestmark = pytest.mark.usefixtures("single_thread")

CONFIG_DIR = Path(__file__).parents[1] / "configs"
PROMPT = "a red disk moving left"
COG_FRAMES, SIZE = 9, 32  # 9 frames of 32x32 -> 3 latent frames of 8x8 (CogVideoX's 4x causal VAE)
SVD_FRAMES = 8  # an image VAE: any frame count
COG_BUILDS = {"plain": {}, "ofs": {"transformer": {"ofs_embed_dim": 16}},
              "inverted-scale": {"vae": {"invert_scale_latents": True}}}


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((SIZE, SIZE, 3), 40, np.uint8)
    img[8:20, 10:22] = rng.integers(0, 255, 3)  # a coloured square on a dark background
    return img


def _cog(build: str):
    pipe = build_tiny_cogvideox_i2v(seed=0, **COG_BUILDS[build])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _first_call(net, run):
    """``run()``'s first call of ``net``: its keyword arguments and output, from a forward hook."""
    seen = {}

    def hook(module, args, kwargs, output):
        if not seen:
            seen.update(args=args, kwargs=dict(kwargs), out=output[0].clone())

    handle = net.register_forward_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("build", list(COG_BUILDS))
def test_cogvideox_i2v_call_is_the_stock_pipelines_first_call(build):
    pipe = _cog(build)
    z = initial_noise(pipe, num_frames=COG_FRAMES, height=SIZE, width=SIZE, seed=3)  # (1, F', C, h, w)
    stock = _first_call(pipe.transformer, lambda: pipe(
        image=Image.fromarray(_image()), prompt=PROMPT, height=SIZE, width=SIZE, num_frames=COG_FRAMES,
        num_inference_steps=2, guidance_scale=1.0, latents=z.clone(), generator=torch.Generator().manual_seed(7),
        output_type="latent"))
    cond = {"encoder_hidden_states": encode_prompt(pipe, PROMPT),
            **image_conditioning(pipe, _image(), num_frames=COG_FRAMES, seed=7)}
    assert ("ofs" in cond) == (build == "ofs") and (stock["kwargs"]["ofs"] is not None) == (build == "ofs")
    with torch.no_grad():
        out = call_denoiser(pipe.transformer, z, stock["kwargs"]["timestep"][0], cond)  # (1, F', C, h, w)
    torch.testing.assert_close(out, stock["out"], atol=1e-5, rtol=0)


def test_cogvideox_i2v_image_latent_is_a_posterior_draw_at_frame_zero_then_zeros():
    pipe = _cog("plain")
    vae = pipe.vae
    x = torch.from_numpy(_image()).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None]  # (1, 3, 1, H, W)
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
    eps = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(7))  # the generator's first draw
    expected = (dist.mean + dist.std * eps) * vae.config.scaling_factor  # (1, C, 1, h, w)
    concat = image_conditioning(pipe, _image(), num_frames=COG_FRAMES, seed=7)["concat"]  # (1, F', C, h, w)
    assert concat.shape == (1, 3, 4, 8, 8)
    torch.testing.assert_close(concat[:, 0], expected[:, :, 0], atol=1e-5, rtol=0)
    assert concat[:, 1:].abs().max() == 0
    other = image_conditioning(pipe, _image(), num_frames=COG_FRAMES, seed=8)["concat"]
    assert (other[:, 0] - concat[:, 0]).abs().mean() > 1e-3  # another seed, another draw


@pytest.mark.parametrize("build", ["plain", "ofs"])
@pytest.mark.parametrize("given", [True, False], ids=["latents", "seed"])
def test_the_unguided_sampler_is_the_stock_cogvideox_i2v_pipeline(build, given):
    from moft.method.sampler import sample

    pipe = _cog(build)
    z = initial_noise(pipe, num_frames=COG_FRAMES, height=SIZE, width=SIZE, seed=5) if given else None
    stock = pipe(image=Image.fromarray(_image(1)), prompt=PROMPT, height=SIZE, width=SIZE, num_frames=COG_FRAMES,
                 num_inference_steps=3, guidance_scale=4.0, latents=None if z is None else z.clone(),
                 generator=torch.Generator().manual_seed(11), output_type="latent").frames  # (1, F', C, h, w)
    ours = sample(pipe, PROMPT, image=_image(1), latents=z, seed=11, steps=3, guidance_scale=4.0,
                  num_frames=COG_FRAMES, height=SIZE, width=SIZE)
    torch.testing.assert_close(ours.latents, stock, atol=1e-5, rtol=0)
    assert ours.frames.shape == (COG_FRAMES, SIZE, SIZE, 3)


def test_cogvideox_15_latent_padding_is_refused_in_one_line():
    pipe = build_tiny_cogvideox_i2v(seed=0, transformer={"patch_size_t": 2, "ofs_embed_dim": 16})
    assert image_input_of(pipe).name == "cogvideox-i2v"
    with pytest.raises(ImageInputError, match="patch_size_t=2 .CogVideoX 1.5. pads its latent frames"):
        image_conditioning(pipe, _image(), num_frames=COG_FRAMES)


def _meta(name: str):
    config = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    with torch.device("meta"):
        return getattr(diffusers, config["_class_name"]).from_config(config)


def test_cogvideox_5b_i2v_at_real_size_on_a_meta_build():
    net, t2v = _meta("cogvideox-5b-i2v-transformer"), _meta("cogvideox-5b-transformer")
    # the image latents' 16 extra input channels are the only new weights: a 2x2 patch into 3072 wide tokens
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in t2v.parameters()) + 16 * 2 * 2 * 3072
    assert default_site(net) == "transformer_blocks.20"
    z = torch.empty(1, 13, 16, 60, 90, device="meta")  # (B, F', C, h, w): 49 x 480 x 720
    cond = {"encoder_hidden_states": torch.empty(1, 226, 4096, device="meta"),
            "concat": torch.empty(1, 13, 16, 60, 90, device="meta")}
    with capture(net, stop=True) as cap:
        call_denoiser(net, z, torch.tensor(500.0, device="meta"), cond)
    assert tuple(cap.output.shape) == (1, 13, 3072, 30, 45)


def _save(pipe, folder: Path, frames: int, scale: float) -> Path:
    pipe.save_pretrained(folder)
    (folder / "moft.json").write_text(json.dumps({"frames": frames, "height": SIZE, "width": SIZE,
                                                  "guidance_scale": scale}))
    return folder


def _control(tmp_path: Path, folder: Path, channels, *extra):
    """``moft control`` with a right-moving box on a 96x96 image (fitted to 32x32); the run's report."""
    from typer.testing import CliRunner

    from moft.front.cli import app

    channels.save(tmp_path / "ch.safetensors")
    Image.fromarray(np.kron(_image(2), np.ones((3, 3, 1), np.uint8))).save(tmp_path / "big.png")
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"version": 1, "regions": [
        {"mask": {"box": [0.25, 0.2, 0.7, 0.65]}, "direction": "right", "speed": 0.3}]}))
    args = ["control", traj, "--model", folder, "--channels", tmp_path / "ch.safetensors", "--steps", 3,
            "--guided-steps", "0:2", "--iterations", 1, "--image", tmp_path / "big.png", "--out", tmp_path / "o.gif",
            *extra]
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return json.loads((tmp_path / "o.report.json").read_text())


@pytest.mark.parametrize("kind", ["curves", "drag"])
def test_moft_control_animates_an_image_on_a_saved_tiny_cogvideox_i2v(tmp_path, kind):
    folder = _save(_cog("plain"), tmp_path / "cog", COG_FRAMES, 4.0)
    report = _control(tmp_path, folder, all_channels(32, "cogvideox"), "--target-kind", kind)
    assert report["image"] == {"height": SIZE, "width": SIZE} and report["frames"] == COG_FRAMES
    assert report["counts"]["backwards"] == 2 and all(np.isfinite(r["loss"]) for r in report["losses"])


def _svd():
    pipe = build_tiny_svd(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_svd_image_conditioning_is_the_stock_pipelines_unet_input():
    pipe = _svd()
    z = initial_noise(pipe, num_frames=SVD_FRAMES, height=SIZE, width=SIZE, seed=3, steps=2)  # (1, F, C, h, w)
    stock = _first_call(pipe.unet, lambda: pipe(
        Image.fromarray(_image()), height=SIZE, width=SIZE, num_frames=SVD_FRAMES, num_inference_steps=2,
        max_guidance_scale=3.0, latents=z / pipe.scheduler.init_noise_sigma, generator=torch.Generator().manual_seed(7),
        output_type="latent"))
    cond = image_conditioning(pipe, _image(), num_frames=SVD_FRAMES, seed=7)
    kwargs = stock["kwargs"]
    uncond_ehs, cond_ehs = kwargs["encoder_hidden_states"].chunk(2)  # the stock batch: [uncond, cond]
    torch.testing.assert_close(cond["encoder_hidden_states"], cond_ehs, atol=1e-6, rtol=0)
    assert uncond_ehs.abs().max() == 0 and kwargs["added_time_ids"][1].tolist() == pytest.approx([6, 127, 0.02])
    torch.testing.assert_close(cond["added_time_ids"], kwargs["added_time_ids"][1:], atol=1e-6, rtol=0)
    uncond_in, cond_in = stock["args"][0][:, :, 4:].chunk(2)  # (1, F, C, h, w): the latents concatenated on channels
    torch.testing.assert_close(cond["concat"], cond_in, atol=1e-6, rtol=0)
    assert uncond_in.abs().max() == 0
    # the noise-augmented image latent, unscaled, at every frame: 0.02 of the generator's first draw added to the image
    x = torch.from_numpy(_image()).float().div(127.5).sub(1).permute(2, 0, 1)[None]  # (1, 3, H, W)
    x = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = pipe.vae.encode(x).latent_dist.mode()  # (1, C, h, w)
    assert cond["concat"].shape == (1, SVD_FRAMES, 4, 16, 16)
    for f in range(SVD_FRAMES):
        torch.testing.assert_close(cond["concat"][:, f], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("given", [True, False], ids=["latents", "seed"])
def test_the_unguided_sampler_is_the_stock_svd_pipeline(given):
    from moft.method.sampler import sample

    pipe = _svd()
    unit = torch.randn(1, SVD_FRAMES, 4, 16, 16, generator=torch.Generator().manual_seed(5))  # (1, F, C, h, w)
    sigma_max = pipe.scheduler.config.sigma_max
    stock = pipe(Image.fromarray(_image(1)), height=SIZE, width=SIZE, num_frames=SVD_FRAMES, num_inference_steps=3,
                 max_guidance_scale=3.0, latents=unit.clone() if given else None,
                 generator=torch.Generator().manual_seed(11), output_type="latent").frames  # (1, F, C, h, w)
    # moft's latents are the noise at the first sigma: unit noise times sqrt(sigma_max^2 + 1) ("leading" spacing)
    ours = sample(pipe, "", image=_image(1), latents=unit * (sigma_max ** 2 + 1) ** 0.5 if given else None, seed=11,
                  steps=3, guidance_scale=3.0, num_frames=SVD_FRAMES, height=SIZE, width=SIZE)
    torch.testing.assert_close(ours.latents, stock, atol=1e-5, rtol=1e-5)
    assert ours.frames.shape == (SVD_FRAMES, SIZE, SIZE, 3)


def test_svd_guidance_ramps_over_the_frames_and_the_unconditional_branch_sees_no_image():
    from moft.models.image import frame_guidance_scale, unconditional_image

    pipe = _svd()
    ramp = frame_guidance_scale(pipe, 3.0, 5)
    assert ramp.shape == (1, 5, 1, 1, 1) and ramp.flatten().tolist() == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    cond = image_conditioning(pipe, _image(), num_frames=SVD_FRAMES)
    uncond = unconditional_image(pipe, cond)
    assert uncond["concat"].abs().max() == 0 and uncond["encoder_hidden_states"].abs().max() == 0
    assert torch.equal(uncond["added_time_ids"], cond["added_time_ids"])
    # without a moft.json, SVD runs at its stock pipeline's default top of the ramp
    assert default_guidance_scale(pipe) == inspect.signature(type(pipe).__call__).parameters["max_guidance_scale"].default


def test_svd_inversion_is_refused_in_one_line():
    from moft.method.inversion import InversionError, noise_latents

    pipe = _svd()
    z = torch.zeros(1, SVD_FRAMES, 4, 16, 16)
    with pytest.raises(InversionError, match="EulerDiscreteScheduler on sigmas.*use --target-kind curves"):
        noise_latents(pipe, z, z, 200)


def test_the_shape_probe_takes_every_image_to_video_denoiser():
    from moft.front.extract import site_channels
    from moft.models.record import ModelRecord
    from moft.models.tiny import build_tiny_wan21_i2v

    assert site_channels(_svd()) == 64  # up_blocks.1 of (32, 64, 64)
    assert site_channels(_cog("ofs")) == 32  # transformer_blocks.2: 2 heads of 16
    wan21 = build_tiny_wan21_i2v()
    wan21.moft_record = ModelRecord(frames=9, height=SIZE, width=SIZE)  # the tiny size (not the stock 81x480x832)
    assert site_channels(wan21) == 128  # blocks.3: 4 heads of 32, with zero image embeddings


def test_moft_control_animates_an_image_on_a_saved_tiny_svd(tmp_path):
    folder = _save(_svd(), tmp_path / "svd", SVD_FRAMES, 3.0)
    report = _control(tmp_path, folder, all_channels(64, "svd"), "--target-kind", "curves")
    assert report["image"] == {"height": SIZE, "width": SIZE} and report["frames"] == SVD_FRAMES
    assert report["counts"]["backwards"] == 2 and all(np.isfinite(r["loss"]) for r in report["losses"])


def test_moft_control_refuses_a_drag_target_on_svd_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from moft.front.cli import app

    folder = _save(_svd(), tmp_path / "svd", SVD_FRAMES, 3.0)
    all_channels(64, "svd").save(tmp_path / "ch.safetensors")
    Image.fromarray(_image(2)).save(tmp_path / "i.png")
    (tmp_path / "t.json").write_text(json.dumps({"version": 1, "regions": [
        {"mask": {"box": [0.25, 0.2, 0.7, 0.65]}, "direction": "right", "speed": 0.3}]}))
    r = CliRunner().invoke(app, [str(a) for a in ["control", tmp_path / "t.json", "--model", folder, "--channels",
                                                  tmp_path / "ch.safetensors", "--steps", 3, "--guided-steps", "0:2",
                                                  "--image", tmp_path / "i.png", "--target-kind", "drag",
                                                  "--out", tmp_path / "o.gif"]])
    assert r.exit_code == 2 and "does not invert" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o.gif").exists()


SPARSE_FRAMES = 8


def _sparsectrl(simplified: bool = True):
    """The tiny SparseCtrl pipeline; for RGB, its VAE's posterior log-variance pinned at its floor (std ~ 3e-7): the
    stock pipeline encodes the conditioning frame with a posterior sample from torch's global random state, moft
    with the posterior mode, and with no spread the two are the same latent."""
    pipe = build_tiny_sparsectrl(seed=0, simplified=simplified)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        c = pipe.vae.config.latent_channels
        pipe.vae.quant_conv.weight[c:] = 0  # (2C, 2C, 1, 1): the log-variance half
        pipe.vae.quant_conv.bias[c:] = -60.0  # clamped to -30 by the posterior
    return pipe


def _stock_sparse(pipe, image, z, **kw):
    return pipe(PROMPT, height=SIZE, width=SIZE, num_frames=SPARSE_FRAMES, conditioning_frames=[Image.fromarray(image)],
                latents=None if z is None else z.permute(0, 2, 1, 3, 4).contiguous(), output_type="latent", **kw)


@pytest.mark.parametrize("simplified", [True, False], ids=["rgb", "scribble"])
def test_sparsectrl_call_is_the_stock_pipelines_first_unet_call(simplified):
    pipe = _sparsectrl(simplified)
    z = initial_noise(pipe, num_frames=SPARSE_FRAMES, height=SIZE, width=SIZE, seed=3)  # (1, F, C, h, w)
    stock = _first_call(pipe.unet, lambda: _stock_sparse(pipe, _image(), z, num_inference_steps=2, guidance_scale=1.0))
    cond = {"encoder_hidden_states": encode_prompt(pipe, PROMPT),
            **image_conditioning(pipe, _image(), num_frames=SPARSE_FRAMES)}
    assert cond["controlnet_cond"].shape == ((1, 4, SPARSE_FRAMES, 16, 16) if simplified else (1, 3, SPARSE_FRAMES, 32, 32))
    assert cond["conditioning_mask"][0, 0, :, 0, 0].tolist() == [1.0] + [0.0] * (SPARSE_FRAMES - 1)
    with torch.no_grad():
        out = call_denoiser(pipe.unet, z, stock["args"][1], cond)  # (1, F, C, h, w)
        plain = call_denoiser(pipe.unet, z, stock["args"][1], {"encoder_hidden_states": cond["encoder_hidden_states"]})
    torch.testing.assert_close(out.permute(0, 2, 1, 3, 4), stock["out"], atol=1e-5, rtol=0)
    assert (out - plain).abs().mean() > 1e-3  # the controlnet's residuals change the U-Net's output


@pytest.mark.parametrize("given", [True, False], ids=["latents", "seed"])
def test_the_unguided_sampler_is_the_stock_sparsectrl_pipeline(given):
    from moft.method.sampler import sample

    pipe = _sparsectrl()
    z = initial_noise(pipe, num_frames=SPARSE_FRAMES, height=SIZE, width=SIZE, seed=5) if given else None
    stock = _stock_sparse(pipe, _image(1), z, num_inference_steps=3, guidance_scale=4.0,
                          generator=torch.Generator().manual_seed(11)).frames  # (1, C, F, h, w)
    ours = sample(pipe, PROMPT, image=_image(1), latents=z, seed=11, steps=3, guidance_scale=4.0,
                  num_frames=SPARSE_FRAMES, height=SIZE, width=SIZE)
    torch.testing.assert_close(ours.latents.permute(0, 2, 1, 3, 4), stock, atol=1e-5, rtol=0)


def test_sparsectrl_guess_mode_is_refused_in_one_line():
    pipe = build_tiny_sparsectrl(seed=0)
    pipe.controlnet.register_to_config(global_pool_conditions=True)
    with pytest.raises(ImageInputError, match="global_pool_conditions .guess mode."):
        image_conditioning(pipe, _image(), num_frames=SPARSE_FRAMES)


@pytest.mark.parametrize("kind", ["curves", "drag"])
def test_moft_control_animates_an_image_on_a_saved_tiny_sparsectrl(tmp_path, kind):
    folder = _save(_sparsectrl(), tmp_path / "sparse", SPARSE_FRAMES, 4.0)
    report = _control(tmp_path, folder, all_channels(64, "animatediff"), "--target-kind", kind)
    assert report["image"] == {"height": SIZE, "width": SIZE} and report["frames"] == SPARSE_FRAMES
    assert report["counts"]["backwards"] == 2 and all(np.isfinite(r["loss"]) for r in report["losses"])


def test_sparsectrl_rgb_at_real_size_on_a_meta_build():
    from test_configs import build_animatediff

    unet, controlnet = build_animatediff(device_meta=True), _meta("animatediff-sparsectrl-rgb")
    side = image_input_of(build_tiny_sparsectrl()).side
    from moft.models.adapters import SideCall

    cond = {"encoder_hidden_states": torch.empty(1, 77, 768, device="meta"),
            "controlnet_cond": torch.empty(1, 4, 16, 64, 64, device="meta"),
            "conditioning_mask": torch.empty(1, 1, 16, 64, 64, device="meta"),
            "side": SideCall(controlnet, side.inputs, side.outputs, side.options)}
    z = torch.empty(1, 16, 4, 64, 64, device="meta")  # (B, F, C, h, w): 16 x 512 x 512
    with capture(unet, stop=True) as cap:
        call_denoiser(unet, z, torch.tensor(500.0, device="meta"), cond)
    assert tuple(cap.output.shape) == (1, 16, 1280, 32, 32)  # the paper's feature, as without the controlnet

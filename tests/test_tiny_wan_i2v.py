"""The third organism's builder: a tiny WanImageToVideoPipeline with Wan 2.2 TI2V conditioning (issue 25)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from moft.io.synthetic import make_clip
from moft.models.tiny import build_tiny_wan, build_tiny_wan_i2v

pytestmark = pytest.mark.usefixtures("single_thread")

# latents normalised with a mean and std that are not 0 and 1, so the check sees the pipeline's convention
VAE = dict(latents_mean=[0.1, -0.2, 0.3, 0.0], latents_std=[0.5, 2.0, 1.0, 0.25])


def _image(seed: int) -> Image.Image:
    clip = make_clip(np.random.default_rng(seed), kind="object", n_frames=9)
    return Image.fromarray((clip.frames[0] * 255).round().astype(np.uint8))  # (32, 32, 3)


@torch.no_grad()
def _image_latent(vae, image: Image.Image) -> torch.Tensor:
    """The image's normalised latent, computed here from the VAE alone: ``(1, C, 1, h, w)``."""
    x = torch.from_numpy(np.asarray(image)).float().div(127.5).sub(1)  # (H, W, 3) in [-1, 1]
    x = x.permute(2, 0, 1)[None, :, None]  # (1, 3, 1, H, W)
    z = vae.encode(x).latent_dist.mode()  # (1, C, 1, h, w)
    mean = torch.tensor(VAE["latents_mean"]).view(1, -1, 1, 1, 1)
    std = torch.tensor(VAE["latents_std"]).view(1, -1, 1, 1, 1)
    return (z - mean) / std


def _generate(pipe, image, seed=0, output_type="latent"):
    # with temporal scale 1 the pipeline rounds num_frames up to the next k + 1 (as WanPipeline does): 8 -> 9
    return pipe(image=image, prompt="a red disk moving right", num_frames=8, height=32, width=32,
                num_inference_steps=3, guidance_scale=4.0, generator=torch.Generator().manual_seed(seed),
                output_type=output_type).frames


def test_i2v_builder_has_the_t2v_components_and_ti2v_conditioning():
    pipe, wan = build_tiny_wan_i2v(seed=0), build_tiny_wan(seed=0)
    assert type(pipe).__name__ == "WanImageToVideoPipeline"
    assert pipe.config.expand_timesteps and pipe.image_encoder is None
    for name in ("transformer", "vae", "text_encoder"):
        a, b = getattr(pipe, name).state_dict(), getattr(wan, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_i2v_latent_frame_0_is_the_image_latent_and_survives_save_load(tmp_path, monkeypatch):
    pipe = build_tiny_wan_i2v(seed=0, vae=VAE)
    pipe.set_progress_bar_config(disable=True)
    image = _image(1)
    latents = _generate(pipe, image)  # (1, C, F, h, w)
    assert latents.shape == (1, 4, 9, 16, 16)
    expected = _image_latent(pipe.vae, image)[:, :, 0]  # (1, C, h, w)
    torch.testing.assert_close(latents[:, :, 0], expected, rtol=1e-5, atol=1e-5)
    assert (latents[:, :, 1:] - expected[:, :, None]).abs().mean() > 0.1  # the other frames are generated
    other = _image(2)
    assert not torch.allclose(_generate(pipe, other)[:, :, 0], expected, atol=1e-3)  # planted: another image

    pipe.save_pretrained(tmp_path / "i2v")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from diffusers import DiffusionPipeline

    loaded = DiffusionPipeline.from_pretrained(tmp_path / "i2v")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded).__name__ == "WanImageToVideoPipeline" and loaded.config.expand_timesteps
    torch.testing.assert_close(_generate(loaded, image), latents, rtol=0, atol=0)
    video = _generate(loaded, image, output_type="np")  # decodes too
    assert video.shape == (1, 9, 32, 32, 3)


def test_training_noise_matches_what_the_stock_pipeline_feeds_the_transformer():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts/train_shipped_model.py"
    spec = importlib.util.spec_from_file_location("train_shipped_model", path)
    train = importlib.util.module_from_spec(spec)
    sys.modules["train_shipped_model"] = train  # dataclasses look their module up there
    spec.loader.exec_module(train)

    pipe = build_tiny_wan_i2v(seed=0, vae=VAE)
    pipe.set_progress_bar_config(disable=True)
    seen = []  # the stock call's transformer inputs
    pipe.transformer.register_forward_pre_hook(lambda m, args, kw: seen.append(kw), with_kwargs=True)
    image = _image(3)
    pipe(image=image, prompt="a red disk", num_frames=8, height=32, width=32, num_inference_steps=2,
         guidance_scale=1.0, output_type="latent")
    stock = seen[0]  # first step
    z = torch.randn(2, 4, 9, 16, 16)  # (B, C, F, h, w)
    z[:, :, :1] = _image_latent(pipe.vae, image)
    noise = torch.randn_like(z)
    noisy, t, target = train._noise_flow_i2v(pipe.scheduler, z, noise, 0)
    assert t.shape == (2, 9 * 8 * 8)
    # the same token layout: timestep 0 exactly where the stock call has it (frame 0), t elsewhere
    assert torch.equal(t == 0, (stock["timestep"][:1] == 0).expand(2, -1))
    assert torch.allclose(t[:, 64:], t[:, -1:].expand(-1, t.shape[1] - 64))
    # frame 0 of the model input is the image latent in both; the other frames are noised
    torch.testing.assert_close(stock["hidden_states"][:, :, 0], z[:1, :, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(noisy[:, :, 0], z[:, :, 0], rtol=0, atol=0)
    s = (t[:, -1] / 1000).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(noisy[:, :, 1:], (1 - s) * z[:, :, 1:] + s * noise[:, :, 1:])
    torch.testing.assert_close(target, noise - z)


def test_shipped_i2v_model_keeps_the_image_as_frame_0():
    from moft.models.loading import load_pipeline

    pipe = load_pipeline("moft-tiny-wan-i2v")
    assert type(pipe).__name__ == "WanImageToVideoPipeline" and pipe.config.expand_timesteps
    image = _image(4)
    video = _generate(pipe, image, output_type="np")[0]  # (F, H, W, 3) in [0, 1]
    assert video.shape == (9, 32, 32, 3)
    with torch.no_grad():  # the VAE's own round trip of the image: what frame 0 decodes to
        x = torch.from_numpy(np.asarray(image)).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None]
        round_trip = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample[0, :, 0]  # (3, H, W)
    round_trip = (round_trip.permute(1, 2, 0).clamp(-1, 1).numpy() + 1) / 2  # (H, W, 3)
    np.testing.assert_allclose(video[0], round_trip, atol=2e-3)
    target = np.asarray(image) / 255
    assert np.mean((video[0] - target) ** 2) < 0.01  # 20 dB: the trained VAE keeps the image
    assert np.mean((video[-1] - video[0]) ** 2) > 1e-4  # and the video is not frame 0 repeated

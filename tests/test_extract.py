"""moft.front.extract: features and MOFT of a generated video or of a given one, and the saved file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

import moft
from moft.method.channels import ChannelsError, MotionChannels
from moft.method.features import moft as moft_of
from moft.method.inversion import ddim_invert
from moft.models.latents import encode_prompt, encode_video
from moft.io.synthetic import make_clip

from conftest import FRAMES, SIZE

pytestmark = pytest.mark.usefixtures("single_thread")

STEPS, TIMESTEP = 4, 500
C, GRID = 64, 16


def _video() -> np.ndarray:
    clip = make_clip(np.random.default_rng(0), kind="object", direction="left")
    return (clip.frames * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def from_prompt(animatediff, tiny_channels):
    return moft.extract(animatediff, prompt="a red disk moving left", steps=STEPS, timestep=TIMESTEP,
                        channels=tiny_channels)


@pytest.fixture(scope="module")
def from_video(animatediff, tiny_channels):
    return moft.extract(animatediff, video=_video(), steps=STEPS, timestep=TIMESTEP, channels=tiny_channels)


def _nearest(pipe, ascending: bool) -> tuple[int, int]:
    pipe.scheduler.set_timesteps(STEPS)
    ts = [int(t) for t in pipe.scheduler.timesteps]
    ts = sorted(ts) if ascending else ts
    i = int(np.argmin([abs(t - TIMESTEP) for t in ts]))
    return i, ts[i]


def test_prompt_features_are_f_c_h_w_at_the_site(from_prompt):
    assert from_prompt.features.shape == (FRAMES, C, GRID, GRID)


def test_prompt_moft_has_one_channel_per_index_on_the_latent_grid(from_prompt, tiny_channels):
    assert from_prompt.moft.shape == (FRAMES, len(tiny_channels.indices), GRID, GRID)


def test_prompt_moft_is_the_moft_of_its_features(from_prompt, tiny_channels):
    expected = moft_of(from_prompt.features[None], tiny_channels.indices, (GRID, GRID))[0]
    torch.testing.assert_close(from_prompt.moft, expected)


def test_prompt_records_the_channels_used(from_prompt, tiny_channels):
    assert torch.equal(from_prompt.channels, tiny_channels.indices)
    assert from_prompt.meta["channels"] == tiny_channels.indices.tolist()


def test_prompt_takes_features_at_the_denoising_step_nearest_the_timestep(animatediff, from_prompt):
    index, t = _nearest(animatediff, ascending=False)
    assert from_prompt.meta["timestep"] == t
    assert from_prompt.meta["denoising_step"] == index


def test_prompt_returns_the_generated_frames(from_prompt):
    assert from_prompt.frames.shape == (FRAMES, SIZE, SIZE, 3)
    assert from_prompt.frames.min() >= 0.0 and from_prompt.frames.max() <= 1.0


def test_video_features_and_moft_shapes(from_video, tiny_channels):
    assert from_video.features.shape == (FRAMES, C, GRID, GRID)
    assert from_video.moft.shape == (FRAMES, len(tiny_channels.indices), GRID, GRID)


def test_video_features_are_the_inversion_features_at_the_nearest_step(animatediff, from_video):
    index, t = _nearest(animatediff, ascending=True)
    z0 = encode_video(animatediff, _video())
    inv = ddim_invert(animatediff, z0, {"encoder_hidden_states": encode_prompt(animatediff, "")}, num_steps=STEPS,
                      capture_step=index, stop_after_capture=True)
    torch.testing.assert_close(from_video.features, inv.features["up_blocks.1"][0])
    assert from_video.meta["timestep"] == t and from_video.meta["inversion_step"] == index


def test_video_moft_has_zero_mean_over_frames(from_video):
    assert from_video.moft.mean(dim=0).abs().max() < 1e-5


def test_video_without_channels_keeps_every_channel(animatediff):
    ex = moft.extract(animatediff, video=_video(), steps=STEPS, timestep=TIMESTEP)
    assert ex.channels is None
    assert ex.moft.shape == (FRAMES, C, GRID, GRID)
    assert ex.meta["channels"] is None


def test_channels_of_another_width_raise_channels_error(animatediff):
    wide = MotionChannels(torch.tensor([0]), torch.tensor([1]),
                          {"horizontal": torch.zeros(1280), "vertical": torch.zeros(1280)},
                          torch.zeros(1280, 2), torch.zeros(1280), {"site": "up_blocks.1"})
    with pytest.raises(ChannelsError, match="1280"):
        moft.extract(animatediff, video=_video(), steps=STEPS, timestep=TIMESTEP, channels=wide)


def test_prompt_and_video_together_raise_value_error(animatediff):
    with pytest.raises(ValueError, match="exactly one"):
        moft.extract(animatediff, prompt="a red disk", video=_video(), steps=STEPS)


def test_neither_prompt_nor_video_raises_value_error(animatediff):
    with pytest.raises(ValueError, match="exactly one"):
        moft.extract(animatediff, steps=STEPS)


def test_save_writes_a_safetensors_file_that_loads_back(from_video, tmp_path):
    path = from_video.save(tmp_path / "out" / "extract.safetensors")
    assert path.is_file()
    with safe_open(str(path), framework="pt") as fh:
        assert set(fh.keys()) == {"features", "moft", "channels"}
        assert torch.equal(fh.get_tensor("features"), from_video.features)
        assert torch.equal(fh.get_tensor("moft"), from_video.moft)
        assert torch.equal(fh.get_tensor("channels"), from_video.channels)
        assert json.loads(fh.metadata()["moft_extract"]) == json.loads(json.dumps(from_video.meta))


def test_site_channels_probes_every_architecture(animatediff, modelscope, svd_unet):
    import types

    from moft.front.extract import site_channels

    assert site_channels(animatediff) == 64
    assert site_channels(modelscope) == 32
    svd = types.SimpleNamespace(unet=svd_unet, vae=animatediff.vae, scheduler=animatediff.scheduler)
    assert site_channels(svd) == 32


@pytest.mark.parametrize("shape", [(1, 32, 32, 3), (8, 32, 32), (32, 32, 3)])
def test_extract_refuses_a_video_without_frames_to_compare_in_one_line(animatediff, shape):
    """Content removal subtracts each position's mean over frames: one frame (or no frame axis) leaves
    an all-zero MOFT, so the API refuses it in moft's own error type."""
    import numpy as np

    from moft.front.extract import extract
    from moft.io.video import VideoError

    with pytest.raises(VideoError, match=r"^video: expected \(F, H, W, 3\) frames with F >= 2") as info:
        extract(animatediff, video=np.zeros(shape, np.uint8))
    assert "\n" not in str(info.value)

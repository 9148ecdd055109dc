"""Tiny randomly initialised models of every supported architecture, built from configs offline."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # tiny models: one thread is fastest, and CI shares 2 cores

FRAMES, SIZE = 8, 32  # pixels; the tiny VAE halves it -> 16x16 latents


def tiny_animatediff(seed: int = 0):
    from moft.models.tiny import build_tiny_animatediff

    pipe = build_tiny_animatediff(seed=seed)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_modelscope(seed: int = 0):
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    base = tiny_animatediff(seed)
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        layers_per_block=1, norm_num_groups=8, cross_attention_dim=64, attention_head_dim=8,
    )
    pipe = TextToVideoSDPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=unet,
                                 scheduler=base.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_svd_unet(seed: int = 0):
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(seed)
    return UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), addition_time_embed_dim=8, projection_class_embeddings_input_dim=24,
        layers_per_block=1, cross_attention_dim=32, num_attention_heads=(2, 4), num_frames=FRAMES,
    )


def svd_cond(batch: int = 1, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"encoder_hidden_states": torch.randn(batch, 1, 32, generator=g),
            "added_time_ids": torch.tensor([[6.0, 127.0, 0.02]] * batch),
            "concat": torch.randn(batch, FRAMES, 4, 16, 16, generator=g)}


@pytest.fixture(scope="session")
def animatediff():
    return tiny_animatediff()


@pytest.fixture(scope="session")
def modelscope():
    return tiny_modelscope()


@pytest.fixture(scope="session")
def svd_unet():
    return tiny_svd_unet()


@pytest.fixture(scope="session")
def tiny_channels(animatediff):
    from moft.method.channels import fit_channels

    return fit_channels(animatediff, method="noise", scenes=1, seed=0)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, animatediff, tiny_channels):
    """A tiny AnimateDiff pipeline saved with save_pretrained, with its channels shipped beside it."""
    import json

    path = tmp_path_factory.mktemp("models") / "tiny-animatediff"
    animatediff.save_pretrained(path)
    tiny_channels.save(path / "motion_channels.safetensors")
    (path / "moft.json").write_text(json.dumps({"prompt": "a red disk", "guidance_scale": 4.0}))
    return path


def text_cond(pipe, prompt: str = "a red disk"):
    from moft.models.latents import encode_prompt

    return {"encoder_hidden_states": encode_prompt(pipe, prompt)}


@pytest.fixture(scope="session")
def single_thread():
    """One intra-op thread. With a training job on the 2 cores, two OpenMP threads spin-wait on each
    other and a tiny forward pass takes seconds instead of ~0.1 s. Request it before model fixtures
    (``pytestmark = pytest.mark.usefixtures("single_thread")``) so they are built under it too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



def all_channels(width: int, architecture: str = "wan"):
    """Every channel of a site ``width`` wide as motion channels (a tiny random build ships none; the loss reads all)."""
    from moft.method.channels import MotionChannels

    every = torch.arange(width)
    return MotionChannels(every, every.clone(), {"horizontal": torch.ones(width), "vertical": torch.ones(width)},
                          torch.zeros(width, 2), torch.zeros(width), meta={"architecture": architecture})

# Diffusion transformers. Clips are 9 frames (4k+1, what Wan's and CogVideoX's VAEs take) of 32x32.
DIT_FRAMES = 9


def tiny_wan(seed: int = 0):
    """moft-tiny-wan's architecture: no temporal compression, 32x32 frames -> 16x16 latents -> 8x8 tokens."""
    from moft.models.tiny import build_tiny_wan

    pipe = build_tiny_wan(seed=seed)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_wan_4x(seed: int = 0):
    """A tiny Wan whose VAE compresses time 4x like Wan 2.1's: 9 frames -> 3 latent frames of 8x8."""
    from moft.models.tiny import build_tiny_wan

    pipe = build_tiny_wan(seed=seed, vae={"dim_mult": [1, 1, 1], "temperal_downsample": [True, True],
                                          "scale_factor_temporal": 4, "scale_factor_spatial": 4})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_cogvideox(seed: int = 0):
    """A tiny CogVideoXPipeline: rotary embeddings computed by the pipeline, a 4x temporal VAE (3 blocks),
    v-prediction DDIM; 9 frames of 32x32 -> 3 latent frames of 8x8 -> 4x4 tokens."""
    from diffusers import (AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline,
                           CogVideoXTransformer3DModel)
    from transformers import T5Config, T5EncoderModel

    from moft.models.tiny.tokenizer import build_t5_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_t5_tokenizer(max_length=226)
    text = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                   dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
                                   eos_token_id=tokenizer.eos_token_id))
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=16,
        text_embed_dim=32, num_layers=4, sample_width=8, sample_height=8, sample_frames=DIT_FRAMES, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=226, use_rotary_positional_embeddings=True)
    vae = AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 3, up_block_types=("CogVideoXUpBlock3D",) * 3,
        block_out_channels=(8, 8, 16), latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4)
    scheduler = CogVideoXDDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing",
                                       rescale_betas_zero_snr=True, clip_sample=False, set_alpha_to_one=True,
                                       snr_shift_scale=3.0, beta_schedule="scaled_linear")
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text, vae=vae, transformer=transformer,
                             scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def wan():
    return tiny_wan()


@pytest.fixture(scope="session")
def wan_4x():
    return tiny_wan_4x()


@pytest.fixture(scope="session")
def cogvideox():
    return tiny_cogvideox()


# The smallest evaluation suite (tests/test_suite.py, tests/test_runner.py): one red disk asked to move left,
# one guided setting, 3 steps; its prompt is the tiny models' own.
SUITE = {
    "name": "t", "steps": 3, "guidance_scale": 4.0,
    "prompts": ["a red disk standing still"], "seeds": [0],
    "requests": [{"name": "left", "region": "object", "direction": "left", "speed": 0.05}],
    "settings": [{"name": "MOFT", "steps": [1, 2]}],
}


def write_suite(folder, suite: dict):
    """``suite`` written as ``folder/suite.json``; returns the path."""
    import json

    path = folder / "suite.json"
    path.write_text(json.dumps(suite))
    return path

"""Tiny randomly initialised models of every supported architecture, built from configs offline."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # tiny models: one thread is fastest, and CI shares 2 cores

FRAMES, SIZE = 8, 32  # pixels; the tiny VAE halves it -> 16x16 latents


def tiny_animatediff(seed: int = 0):
    from moft.models import build_tiny_animatediff

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
            "image_latents": torch.randn(batch, FRAMES, 4, 16, 16, generator=g)}


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
    from moft.channels import fit_channels

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
    from moft.latents import encode_prompt

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

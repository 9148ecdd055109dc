"""The organisms moft ships and tests on: their architectures as data and their builders.

Example:
    >>> from moft.models.tiny import build_tiny_animatediff, build_tiny_wan
    >>> type(build_tiny_animatediff().unet).__name__, type(build_tiny_wan().transformer).__name__
    ('UNetMotionModel', 'WanTransformer3DModel')

``moft-tiny`` (an ``AnimateDiffPipeline``), ``moft-tiny-wan`` (a ``WanPipeline``) and ``moft-tiny-wan-i2v`` (a
``WanImageToVideoPipeline``) are trained by ``scripts/train_shipped_model.py`` from these builders on
``moft.synthetic`` clips.
"""

from __future__ import annotations

import torch

from .tokenizer import build_t5_tokenizer, build_tokenizer

# The shipped model's architecture (also the recipe in scripts/train_shipped_model.py).
TINY_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlockMotion", "CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion"),
    up_block_types=("CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion", "UpBlockMotion"),
    block_out_channels=(32, 64, 96),
    layers_per_block=1,
    norm_num_groups=8,
    cross_attention_dim=64,
    num_attention_heads=4,
    motion_num_attention_heads=4,
    motion_max_seq_length=32,
    use_motion_mid_block=True,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
    mid_block_add_attention=False,
)
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=20)
TINY_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                      prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=True,
                      timestep_spacing="trailing")


def build_tiny_animatediff(seed: int = 0, unet: dict | None = None, vae: dict | None = None):
    """A randomly initialised ``AnimateDiffPipeline`` with the shipped model's architecture.

    Example:
        >>> pipe = build_tiny_animatediff(seed=0)
        >>> type(pipe.unet).__name__
        'UNetMotionModel'

    Args:
        seed: seed of the random weights.
        unet: overrides of ``TINY_UNET``.
        vae: overrides of ``TINY_VAE``.
    """
    from diffusers import AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer(max_length=TINY_TEXT["max_position_embeddings"])
    text_cfg = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                              **TINY_TEXT)
    with torch.random.fork_rng():  # seeded weights; the caller's random state is left as it was
        torch.manual_seed(seed)
        return AnimateDiffPipeline(
            vae=AutoencoderKL(**{**TINY_VAE, **(vae or {})}),
            text_encoder=CLIPTextModel(text_cfg),
            tokenizer=tokenizer,
            unet=UNetMotionModel(**{**TINY_UNET, **(unet or {})}),
            motion_adapter=None,
            scheduler=DDIMScheduler(**TINY_SCHEDULER),
        )


# The DiT organism's architecture (moft-tiny-wan; recipe in scripts/train_shipped_model.py --organism wan).
TINY_WAN_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=4,
    attention_head_dim=32,
    in_channels=4,
    out_channels=4,
    text_dim=64,
    freq_dim=64,
    ffn_dim=256,
    num_layers=6,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)
# No temporal compression: a 4x causal VAE leaves 3 latent frames of a 9-frame clip, too few for a
# per-frame MOFT; spatially 2x like moft-tiny's VAE (32x32 frames -> 16x16 latents -> 8x8 tokens).
TINY_WAN_VAE = dict(base_dim=16, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[False],
                    scale_factor_temporal=1, scale_factor_spatial=2, latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
TINY_UMT5 = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, dropout_rate=0.0)
TINY_FLOW_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0)


def build_tiny_wan(seed: int = 0, transformer: dict | None = None, vae: dict | None = None):
    """A randomly initialised ``WanPipeline`` with the DiT organism's architecture (moft-tiny-wan).

    Example:
        >>> pipe = build_tiny_wan(seed=0)
        >>> type(pipe.transformer).__name__, pipe.vae.config.scale_factor_temporal
        ('WanTransformer3DModel', 1)

    Args:
        seed: seed of the random weights.
        transformer: overrides of ``TINY_WAN_TRANSFORMER``.
        vae: overrides of ``TINY_WAN_VAE``.
    """
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = build_t5_tokenizer()
    text_cfg = UMT5Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id, **TINY_UMT5)
    with torch.random.fork_rng():  # seeded weights; the caller's random state is left as it was
        torch.manual_seed(seed)
        return WanPipeline(
            tokenizer=tokenizer,
            text_encoder=UMT5EncoderModel(text_cfg),
            vae=AutoencoderKLWan(**{**TINY_WAN_VAE, **(vae or {})}),
            transformer=WanTransformer3DModel(**{**TINY_WAN_TRANSFORMER, **(transformer or {})}),
            scheduler=FlowMatchEulerDiscreteScheduler(**TINY_FLOW_SCHEDULER),
        )


def build_tiny_wan_i2v(seed: int = 0, transformer: dict | None = None, vae: dict | None = None):
    """A randomly initialised ``WanImageToVideoPipeline`` with Wan 2.2 TI2V conditioning (moft-tiny-wan-i2v).

    The components are ``build_tiny_wan``'s (same configs and, for one seed, the same weights), with
    ``expand_timesteps=True`` and no image encoder: the image's clean VAE latent is latent frame 0, whose tokens
    the transformer sees at timestep 0 (the pipeline's per-token timesteps assume the tiny transformer's
    spatial patch of 2).

    Example:
        >>> pipe = build_tiny_wan_i2v(seed=0)
        >>> type(pipe).__name__, pipe.config.expand_timesteps, pipe.image_encoder
        ('WanImageToVideoPipeline', True, None)

    Args:
        seed: seed of the random weights.
        transformer: overrides of ``TINY_WAN_TRANSFORMER``.
        vae: overrides of ``TINY_WAN_VAE``.
    """
    from diffusers import WanImageToVideoPipeline

    wan = build_tiny_wan(seed=seed, transformer=transformer, vae=vae)
    return WanImageToVideoPipeline(tokenizer=wan.tokenizer, text_encoder=wan.text_encoder, vae=wan.vae,
                                   transformer=wan.transformer, scheduler=wan.scheduler, expand_timesteps=True)


TINY_CLIP_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                        patch_size=8, projection_dim=32)


def build_tiny_wan21_i2v(seed: int = 0):
    """A randomly initialised ``WanImageToVideoPipeline`` with Wan 2.1 I2V conditioning (tests only).

    The transformer takes the noisy latents, a mask of the given frames and the condition latents on
    channels (4 + 1 + 4 with the tiny VAE's temporal scale of 1), and a tiny CLIP vision encoder's
    embeddings of the image as ``encoder_hidden_states_image``.

    Example:
        >>> pipe = build_tiny_wan21_i2v()
        >>> pipe.config.expand_timesteps, pipe.transformer.config.in_channels
        (False, 9)
    """
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    wan = build_tiny_wan(seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder = CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP_VISION))
        transformer = WanTransformer3DModel(**{**TINY_WAN_TRANSFORMER, "in_channels": 9, "image_dim": 32,
                                               "added_kv_proj_dim": 128})
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return WanImageToVideoPipeline(tokenizer=wan.tokenizer, text_encoder=wan.text_encoder, vae=wan.vae,
                                   transformer=transformer, scheduler=wan.scheduler, image_processor=processor,
                                   image_encoder=encoder)


# A tiny CogVideoX (tests only): 9 frames of 32x32 -> 3 latent frames of 8x8 (a 4x causal VAE of 3 blocks) -> 4x4 tokens.
TINY_COGVIDEOX_TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                                  time_embed_dim=16, text_embed_dim=32, num_layers=4, sample_width=8, sample_height=8,
                                  sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
                                  use_rotary_positional_embeddings=True)
TINY_COGVIDEOX_VAE = dict(down_block_types=("CogVideoXDownBlock3D",) * 3, up_block_types=("CogVideoXUpBlock3D",) * 3,
                          block_out_channels=(8, 8, 16), latent_channels=4, layers_per_block=1, norm_num_groups=2,
                          temporal_compression_ratio=4)
TINY_COGVIDEOX_SCHEDULER = dict(prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                clip_sample=False, set_alpha_to_one=True, snr_shift_scale=3.0,
                                beta_schedule="scaled_linear")


def build_tiny_cogvideox_i2v(seed: int = 0, transformer: dict | None = None, vae: dict | None = None):
    """A randomly initialised ``CogVideoXImageToVideoPipeline`` (tests only).

    The transformer takes the noisy latents and the image's latents on channels (4 + 4: the image's latent at
    latent frame 0, zeros after); ``transformer={"ofs_embed_dim": 16}`` adds the ``ofs`` embedding CogVideoX 1.5
    I2V has, ``vae={"invert_scale_latents": True}`` its VAE's inverted image scaling.

    Example:
        >>> pipe = build_tiny_cogvideox_i2v()
        >>> type(pipe).__name__, pipe.transformer.config.in_channels
        ('CogVideoXImageToVideoPipeline', 8)
    """
    from diffusers import (AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline,
                           CogVideoXTransformer3DModel)
    from transformers import T5Config, T5EncoderModel

    tokenizer = build_t5_tokenizer(max_length=226)
    text_cfg = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                        dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng():  # seeded weights; the caller's random state is left as it was
        torch.manual_seed(seed)
        return CogVideoXImageToVideoPipeline(
            tokenizer=tokenizer,
            text_encoder=T5EncoderModel(text_cfg),
            vae=AutoencoderKLCogVideoX(**{**TINY_COGVIDEOX_VAE, **(vae or {})}),
            transformer=CogVideoXTransformer3DModel(**{**TINY_COGVIDEOX_TRANSFORMER, "in_channels": 8,
                                                       **(transformer or {})}),
            scheduler=CogVideoXDDIMScheduler(**TINY_COGVIDEOX_SCHEDULER),
        )


# A tiny SVD (tests only): 32x32 frames -> 16x16 latents; up_blocks.1 of 3 (as the full-size model's default site).
TINY_SVD_UNET = dict(sample_size=16, in_channels=8, out_channels=4, block_out_channels=(32, 64, 64),
                     down_block_types=("CrossAttnDownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal",
                                       "DownBlockSpatioTemporal"),
                     up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal",
                                     "CrossAttnUpBlockSpatioTemporal"),
                     layers_per_block=1, cross_attention_dim=32, num_attention_heads=(2, 4, 4),
                     addition_time_embed_dim=8, projection_class_embeddings_input_dim=24, num_frames=8)
# SVD's stock scheduler config (stabilityai/stable-video-diffusion-img2vid-xt, scheduler/scheduler_config.json).
SVD_SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
                     num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
                     steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
# CLIP's vision tower at SVD's 224x224 input (the pipeline resizes the image to it), tiny otherwise.
TINY_SVD_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=224,
                     patch_size=32, projection_dim=32)


def build_tiny_svd(seed: int = 0):
    """A randomly initialised ``StableVideoDiffusionPipeline`` (tests only).

    The U-Net takes the noisy latents and the noise-augmented image's latents on channels (4 + 4), a tiny CLIP
    image embedding as ``encoder_hidden_states`` and the three ``added_time_ids``; the scheduler is SVD's own (Euler
    on Karras sigmas, v-prediction, continuous timesteps).

    Example:
        >>> pipe = build_tiny_svd()
        >>> type(pipe.unet).__name__, type(pipe.scheduler).__name__
        ('UNetSpatioTemporalConditionModel', 'EulerDiscreteScheduler')
    """
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.random.fork_rng():  # seeded weights; the caller's random state is left as it was
        torch.manual_seed(seed)
        return StableVideoDiffusionPipeline(
            vae=AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                                             latent_channels=4, layers_per_block=1),
            image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_SVD_CLIP)),
            unet=UNetSpatioTemporalConditionModel(**TINY_SVD_UNET),
            scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
            feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
        )


def build_tiny_sparsectrl(seed: int = 0, simplified: bool = True):
    """A randomly initialised ``AnimateDiffSparseControlNetPipeline`` on moft-tiny's architecture (tests only).

    ``build_tiny_animatediff``'s components (same configs and, for one seed, the same weights) and a
    ``SparseControlNetModel`` with the U-Net's down blocks. ``simplified`` (SparseCtrl RGB): the conditioning frames
    are VAE latents; else (scribble) pixels through the conditioning embedding. The controlnet's zero-initialised
    layers are drawn at random too: a fresh ControlNet adds nothing to the U-Net, and the tests must see it act.

    Example:
        >>> pipe = build_tiny_sparsectrl()
        >>> type(pipe.controlnet).__name__, pipe.controlnet.config.use_simplified_condition_embedding
        ('SparseControlNetModel', True)
    """
    from diffusers import AnimateDiffSparseControlNetPipeline, SparseControlNetModel

    base = build_tiny_animatediff(seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        controlnet = SparseControlNetModel(
            in_channels=TINY_UNET["in_channels"], conditioning_channels=4 if simplified else 3,
            down_block_types=TINY_UNET["down_block_types"], block_out_channels=TINY_UNET["block_out_channels"],
            layers_per_block=TINY_UNET["layers_per_block"], norm_num_groups=TINY_UNET["norm_num_groups"],
            cross_attention_dim=TINY_UNET["cross_attention_dim"], attention_head_dim=TINY_UNET["num_attention_heads"],
            motion_num_attention_heads=TINY_UNET["motion_num_attention_heads"],
            motion_max_seq_length=TINY_UNET["motion_max_seq_length"], conditioning_embedding_out_channels=(8, 16),
            use_simplified_condition_embedding=simplified)
        for name, p in controlnet.named_parameters():
            if name.startswith("controlnet_"):  # ControlNet's zero convolutions: the condition's way in and out
                torch.nn.init.normal_(p, std=0.05)
    return AnimateDiffSparseControlNetPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                               unet=base.unet, motion_adapter=None, controlnet=controlnet,
                                               scheduler=base.scheduler)

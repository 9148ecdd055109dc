"""Train moft's shipped models on synthetic motion videos: moft-tiny (AnimateDiff), moft-tiny-wan (Wan DiT) and
moft-tiny-wan-i2v (the Wan DiT fine-tuned for image-to-video).

Stages (each resumable): (1) a small VAE on frames (32x32x3 -> 16x16x4; ``AutoencoderKL`` per frame,
or ``AutoencoderKLWan`` on 9-frame clips without temporal compression), optionally (1b) its decoder tuned
further with the encoder frozen (``--vae-decoder-steps``: the latents, and so a trained denoiser, stay
exactly as they were), (2) the denoiser on VAE
latents with EMA weights (moft-tiny: UNetMotionModel + CLIP text encoder, v-prediction; moft-tiny-wan:
WanTransformer3DModel with a frozen random UMT5 encoder, rectified flow with the velocity target),
(3) export of the EMA weights as a diffusers pipeline folder (``save_pretrained``).

moft-tiny-wan-i2v (``--organism wan-i2v``) skips stage 1: it starts from the shipped moft-tiny-wan (its VAE and
frozen text encoder as they are, its EMA transformer as the start) and trains the transformer with Wan 2.2's TI2V
objective: latent frame 0 is the clip's clean frame-0 latent at timestep 0, the loss is on the other frames.

Usage:
    python scripts/train_shipped_model.py --run runs/shipped            # train (resumes if present)
    python scripts/train_shipped_model.py --run runs/shipped --export src/moft/models/shipped/moft-tiny
    python scripts/train_shipped_model.py --organism wan --run runs/wan --text-encoder frozen --threads 1
    python scripts/train_shipped_model.py --organism wan --run runs/wan --vae-decoder-steps 2000 --object-weight 10 --vae-only
    python scripts/train_shipped_model.py --organism wan-i2v --run runs/wan-i2v --text-encoder frozen --lr 3e-4
    accelerate launch scripts/train_shipped_model.py --run runs/big      # same script on GPUs

Logs go to RUN/log.jsonl (loss, seconds, CPU-seconds) and sample grids to RUN/samples/.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from einops import rearrange

from moft.models.pipeline import SHIPPED_DIR  # noqa: E402
from moft.models.tiny import build_tiny_animatediff, build_tiny_wan, build_tiny_wan_i2v  # noqa: E402
from moft.io.synthetic import make_batch, make_clip, object_weights  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/shipped"))
    p.add_argument("--organism", choices=tuple(ORGANISMS), default="animatediff",
                   help="animatediff (moft-tiny, v-prediction), wan (moft-tiny-wan, rectified flow) or wan-i2v "
                        "(moft-tiny-wan-i2v: moft-tiny-wan fine-tuned for image-to-video)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vae-steps", type=int, default=1200)
    p.add_argument("--vae-batch", type=int, default=64, help="frames per VAE step")
    p.add_argument("--vae-schedule", choices=("step", "cosine"), default="step",
                   help="VAE learning rate: 1e-3 then 2e-4 for the last 20%% (moft-tiny), or cosine 1e-3 -> 1e-4")
    p.add_argument("--vae-decoder-steps", type=int, default=0,
                   help="tune the finished VAE's decoder this many steps in all, its encoder frozen (the objects "
                        "weighted by --object-weight): fixes colours the decoder renders badly without moving the "
                        "latents a denoiser trained on (updates RUN/vae; the steps are counted in the log)")
    p.add_argument("--vae-only", action="store_true", help="stop after the VAE stages")
    p.add_argument("--steps", type=int, default=20000, help="UNet steps (stop any time; checkpoints)")
    p.add_argument("--batch", type=int, default=16, help="videos per UNet step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-late", type=float, default=5e-4, help="learning rate after --late-step")
    p.add_argument("--late-step", type=int, default=1500)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--drop-caption", type=float, default=0.1, help="fraction of empty captions (for CFG)")
    p.add_argument("--mix", type=_mix, default=None,
                   help="data mix from now on, e.g. object=0.6,still=0.1,pan=0.15 (default: synthetic.KIND_WEIGHTS)")
    p.add_argument("--describe", type=float, default=0.8, help="share of captions that name the motion")
    p.add_argument("--cross", type=float, default=0.0,
                   help="share of moving objects that start at the edge behind their motion (synthetic.make_clip cross_prob)")
    p.add_argument("--text-encoder", choices=("trained", "frozen"), default="trained",
                   help="train the text encoder with the UNet, or freeze it at its random initialisation "
                        "(switching to frozen on resume resets it there, as AnimateDiff keeps CLIP fixed)")
    p.add_argument("--t-min", type=int, default=0,
                   help="draw training timesteps from [t_min, T) (a phase on the noise levels where only the caption "
                        "can say where the object is)")
    p.add_argument("--object-weight", type=float, default=0.0,
                   help="weigh the loss by 1 + this x the objects' coverage (0: plain MSE); the objects are a few "
                        "percent of the pixels, so plain MSE spends itself on the background texture")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--export", type=Path, default=None, help="write the EMA pipeline here and exit")
    p.add_argument("--seed-checkpoint", type=Path, default=None,
                   help="write the run's weights (no optimizer or EMA state) and VAE to this folder and exit: "
                        "a small resumption point to keep (copy the folder and pass it as --run)")
    p.add_argument("--workers", type=int, default=0,
                   help="make the training clips in this many worker processes (0: in the main process, the "
                        "recipe's CPU stream; >0 feeds a GPU: each worker draws from its own seeded stream)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop with a checkpoint after this many minutes of training (a device lease)")
    p.add_argument("--export-weights", choices=("ema", "raw"), default="ema",
                   help="export the EMA weights (default, what ships) or the raw ones (to probe a phase "
                        "shorter than the EMA horizon of ~1/(1-ema) steps)")
    return p.parse_args()


def _mix(text: str) -> dict[str, float]:
    try:
        return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--mix wants kind=weight,... got {text!r}") from exc


def log(run: Path, **row):
    row["time"] = time.time()
    with open(run / "log.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def atomic_save(obj, path: Path):
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def vae_lr(step: int, total: int, schedule: str) -> float:
    """The VAE's learning rate: 1e-3 then 2e-4 from 80% of the steps (``step``), or a cosine from 1e-3 to 1e-4."""
    if schedule == "cosine":
        return 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + np.cos(np.pi * min(step / total, 1.0)))
    return 1e-3 if step < int(total * 0.8) else 2e-4


def train_vae(args, pipe, organism):
    vae_dir = args.run / "vae"
    if (vae_dir / "config.json").exists():
        return pipe.vae.__class__.from_pretrained(vae_dir)
    vae = pipe.vae
    ckpt = args.run / "vae_ckpt.pt"
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    step, rng = 0, np.random.default_rng(args.seed + 1)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False, map_location=vae.device)
        vae.load_state_dict(state["vae"]), opt.load_state_dict(state["opt"])
        step, rng = state["step"], state["rng"]
    vae.train()
    t0 = time.time()
    while step < args.vae_steps:
        for g in opt.param_groups:  # the schedule follows the step (a resumed run may have more steps)
            g["lr"] = vae_lr(step, args.vae_steps, args.vae_schedule)
        frames, _ = make_batch(rng, max(1, args.vae_batch // organism.frames), n_frames=organism.frames)
        x = organism.vae_input(frames).to(vae.device)
        post = vae.encode(x).latent_dist
        recon = vae.decode(post.sample() if organism.vae_sample else post.mode()).sample
        loss = reconstruction_loss(recon, x) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0 or step == args.vae_steps:
            log(args.run, stage="vae", step=step, loss=loss.item(), psnr=float(-10 * np.log10(F.mse_loss(recon, x).item() / 4)),
                seconds=time.time() - t0)
            atomic_save({"vae": vae.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng}, ckpt)
    vae.eval()
    with torch.no_grad():
        frames, _ = make_batch(np.random.default_rng(12345), 32, n_frames=organism.frames)
        z = vae.encode(organism.vae_input(frames).to(vae.device)).latent_dist.mode().cpu()
    scale = organism.register_scale(vae, z)
    log(args.run, stage="vae_done", **scale)
    vae.save_pretrained(vae_dir)
    return vae


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The VAE stages' loss: MSE + 0.1 L1, each pixel weighted by ``weights`` (broadcast over channels, normalised
    by their mean, so all ones is the plain loss), or plain when None."""
    w = torch.ones_like(recon[:, :1]) if weights is None else weights
    err = recon - x
    return ((w * err**2).mean() + 0.1 * (w * err.abs()).mean()) / w.mean()


def decoder_steps(run: Path) -> int:
    """Steps the run's VAE decoder was tuned with its encoder frozen: its checkpoint, else the log (a committed
    resumption point keeps the tuned ``vae/`` folder and the log, not the checkpoint)."""
    if (run / "vae_decoder_ckpt.pt").is_file():
        return torch.load(run / "vae_decoder_ckpt.pt", map_location="cpu", weights_only=False)["step"]
    if not (run / "log.jsonl").is_file():
        return 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return max([r["step"] for r in rows if r.get("stage") == "vae_decoder"], default=0)


def tune_vae_decoder(args, vae, organism):
    """Stage 1b: train the decoder (and ``post_quant_conv``) of the finished VAE on fresh clips, encoder frozen.

    The latents a denoiser trained on are the encoder's, untouched here, so a tuned decoder only changes how
    samples are rendered. The loss is ``train_vae``'s, with pixels weighted by ``1 + --object-weight`` x the
    objects' coverage (a plain MSE spends itself on the background and rendered small green objects teal).
    Learning rate: cosine from 5e-4 to 5e-5 over ``--vae-decoder-steps``. Writes ``RUN/vae`` when done.
    """
    done = decoder_steps(args.run)
    if done >= args.vae_decoder_steps:
        return vae
    ckpt = args.run / "vae_decoder_ckpt.pt"
    vae.requires_grad_(False)
    trained = [vae.decoder, vae.post_quant_conv]
    params = [p for m in trained for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=5e-4)
    step, rng = 0, np.random.default_rng(args.seed + 4)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False, map_location=vae.device)
        vae.load_state_dict(state["vae"]), opt.load_state_dict(state["opt"])
        step, rng = state["step"], state["rng"]
    elif done:
        raise SystemExit(f"{args.run}: the decoder was tuned {done} steps but its checkpoint is gone; "
                         f"ask for at most {done} steps")
    for m in trained:
        m.train()
    t0 = time.time()
    while step < args.vae_decoder_steps:
        for g in opt.param_groups:
            g["lr"] = 5e-5 + 0.5 * (5e-4 - 5e-5) * (1 + np.cos(np.pi * step / args.vae_decoder_steps))
        clips = [make_clip(rng, n_frames=organism.frames) for _ in range(max(1, args.vae_batch // organism.frames))]
        x = organism.vae_input(np.stack([c.frames for c in clips])).to(vae.device)
        masks = np.stack([c.masks for c in clips])  # (B, F, H, W)
        w = rearrange(torch.from_numpy(object_weights(masks, masks.shape[-2:], args.object_weight)),
                      organism.vae_layout).to(vae.device)  # the VAE input's layout, one channel
        with torch.no_grad():
            post = vae.encode(x).latent_dist
            z = post.sample() if organism.vae_sample else post.mode()
        recon = vae.decode(z).sample
        loss = reconstruction_loss(recon, x, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0 or step == args.vae_decoder_steps:
            log(args.run, stage="vae_decoder", step=step, loss=loss.item(),
                psnr=float(-10 * np.log10(F.mse_loss(recon, x).item() / 4)), seconds=time.time() - t0)
            atomic_save({"vae": vae.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng}, ckpt)
    vae.eval().requires_grad_(False)
    tmp = args.run / "vae.tmp"
    vae.save_pretrained(tmp)
    shutil.rmtree(args.run / "vae", ignore_errors=True)
    os.replace(tmp, args.run / "vae")
    log(args.run, stage="vae_decoder_done", steps=step)
    return vae


def _frames_per_image(frames: np.ndarray) -> torch.Tensor:
    """``(B, F, H, W, 3)`` in [0, 1] -> ``(B*F, 3, H, W)`` in [-1, 1] (an image VAE's input)."""
    return torch.from_numpy(rearrange(frames, "b f h w c -> (b f) c h w")) * 2 - 1


def _clips(frames: np.ndarray) -> torch.Tensor:
    """``(B, F, H, W, 3)`` in [0, 1] -> ``(B, 3, F, H, W)`` in [-1, 1] (a video VAE's input)."""
    return torch.from_numpy(rearrange(frames, "b f h w c -> b c f h w")) * 2 - 1


def _register_sd_scale(vae, z: torch.Tensor) -> dict:
    """Unit variance of scaled latents, as SD's 0.18215 does for its VAE."""
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    return {"scaling_factor": vae.config.scaling_factor}


def _register_wan_scale(vae, z: torch.Tensor) -> dict:
    """Per-channel mean and std of the latents (``(B, C, F, h, w)``), as Wan's VAE config carries them."""
    mean, std = z.mean(dim=(0, 2, 3, 4)), z.std(dim=(0, 2, 3, 4))
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    return {"latents_mean": mean.tolist(), "latents_std": std.tolist()}


@torch.no_grad()
def _latents_sd(vae, frames: np.ndarray) -> torch.Tensor:
    """Scaled VAE latents ``(B, C, F, h, w)`` of an image VAE applied per frame."""
    b = frames.shape[0]
    z = vae.encode(_frames_per_image(frames).to(vae.device)).latent_dist.sample() * vae.config.scaling_factor
    return rearrange(z, "(b f) c h w -> b c f h w", b=b)


@torch.no_grad()
def _latents_wan(vae, frames: np.ndarray) -> torch.Tensor:
    """Normalised Wan VAE latents ``(B, C, F, h, w)`` (``(z - latents_mean) / latents_std``), of the posterior mean."""
    z = vae.encode(_clips(frames).to(vae.device)).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean, device=z.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=z.device).view(1, -1, 1, 1, 1)
    return (z - mean) / std


def _noise_ddpm(sched, z, noise, t_min: int, generator=None):
    """v-prediction on the scheduler's DDPM noise levels: ``(noisy, timesteps, target)``."""
    t = torch.randint(t_min, sched.config.num_train_timesteps, (z.shape[0],), device=z.device)
    return sched.add_noise(z, noise, t), t, sched.get_velocity(z, noise, t)


def _noise_flow(sched, z, noise, t_min: int):
    """Rectified flow: ``x_t = (1 - s) z + s noise``, velocity target ``noise - z``; ``s`` logit-normal,
    shifted by the scheduler's ``shift`` (the sigmas it samples with), and at least ``t_min / 1000``."""
    shift = sched.config.shift
    u = torch.sigmoid(torch.randn(z.shape[0], device=z.device))
    s = shift * u / (1 + (shift - 1) * u)
    s = s.clamp(min=t_min / sched.config.num_train_timesteps)
    sv = s.view(-1, 1, 1, 1, 1)
    return (1 - sv) * z + sv * noise, s * sched.config.num_train_timesteps, noise - z


def _noise_flow_i2v(sched, z, noise, t_min: int):
    """Wan 2.2 TI2V: ``_noise_flow`` on latent frames 1.., frame 0 kept clean with timestep 0 on its tokens.

    Returns the noisy latents ``(B, C, F, h, w)`` (frame 0 is ``z``'s), per-token timesteps ``(B, F * h/2 * w/2)``
    as ``WanImageToVideoPipeline(expand_timesteps=True)`` passes them (frame-major, one per 2x2 patch), and the
    velocity target (frame 0's is not trained on: the organism's ``image_frames``).
    """
    noisy, t, target = _noise_flow(sched, z, noise, t_min)  # t: (B,)
    mask = torch.ones_like(z[:1, :1])  # (1, 1, F, h, w), the pipeline's first_frame_mask
    mask[:, :, 0] = 0
    noisy = (1 - mask) * z + mask * noisy  # (B, C, F, h, w)
    t_tokens = mask[0, 0][:, ::2, ::2].flatten()[None] * t[:, None]  # (B, F * h/2 * w/2)
    return noisy, t_tokens, target


def _build_wan_i2v(seed: int = 0):
    """moft-tiny-wan's trained components as a ``WanImageToVideoPipeline`` (``build_tiny_wan_i2v``'s architecture):
    the shipped EMA transformer as the start, its VAE and frozen text encoder as they are (``seed`` only checks
    that the text encoder is the random one of that seed, which the frozen recipe keeps)."""
    from diffusers import WanPipeline  # noqa: PLC0415

    pipe, wan = build_tiny_wan_i2v(seed=seed), WanPipeline.from_pretrained(WAN_I2V_START)
    pipe.transformer.load_state_dict(wan.transformer.state_dict())  # strict: the same architecture
    fresh = pipe.text_encoder.state_dict()
    if any(not torch.equal(fresh[k], v) for k, v in wan.text_encoder.state_dict().items()):
        raise SystemExit(f"{WAN_I2V_START}'s text encoder is not build_tiny_wan's at seed {seed}")
    pipe.vae = wan.vae  # trained, with its latents_mean/std
    return pipe


def _text_clip(pipe, text_encoder, captions):
    ids = pipe.tokenizer(captions, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(text_encoder.device)).last_hidden_state  # (B, L, D)


def _text_umt5(pipe, text_encoder, captions):
    """The embeddings ``WanPipeline`` computes (512 positions, zeros after each caption's tokens)."""
    return pipe.encode_prompt(captions, do_classifier_free_guidance=False, max_sequence_length=512,
                              device=text_encoder.device)[0]  # (B, 512, D)


def _predict_unet(net, noisy, t, emb):
    return net(noisy, t, encoder_hidden_states=emb.repeat_interleave(noisy.shape[2], dim=0)).sample


def _predict_dit(net, noisy, t, emb):
    return net(noisy, t, encoder_hidden_states=emb, return_dict=False)[0]


@dataclass(frozen=True)
class Organism:
    """What differs between the shipped organisms' recipes (everything else is shared)."""

    build: Callable
    denoiser: str  # pipeline attribute of the trained network
    frames: int  # frames per clip (Wan clips are 4k+1)
    vae_input: Callable  # (B, F, H, W, 3) -> the VAE's input
    register_scale: Callable  # (vae, latents) -> logged scale facts
    latents: Callable  # (vae, frames) -> (B, C, F, h, w) training latents
    noise: Callable  # (sched, z, noise, t_min) -> (noisy, t, target)
    text: Callable  # (pipe, text_encoder, captions) -> (B, L, D)
    predict: Callable  # (net, noisy, t, emb) -> prediction (B, C, F, h, w)
    prediction_type: str
    sample_frames: int  # num_frames to pass the stock pipeline for a clip of ``frames``
    vae_sample: bool  # decode posterior samples while training the VAE (False: the mean, a plain autoencoder)
    vae_layout: str  # einops pattern taking (B, F, H, W) pixel weights to the VAE input's layout
    image_frames: int = 0  # leading latent frames given clean as the image condition (not trained on; image= to sample)
    vae_from_build: bool = False  # the build brings a trained VAE: the run keeps it (no VAE stages)


ORGANISMS = {
    "animatediff": Organism(build_tiny_animatediff, "unet", 8, _frames_per_image, _register_sd_scale, _latents_sd,
                            _noise_ddpm, _text_clip, _predict_unet, "v_prediction", 8, True,
                            "b f h w -> (b f) 1 h w"),
    # WanPipeline rounds num_frames up to the next (k * temporal scale + 1): with scale 1 it adds one, so 8 -> 9.
    # Wan's VAE starts with posterior std ~0.7 against latents of std ~0.3: decoding samples kept it at
    # 19 dB after 500 steps, so it trains as a plain autoencoder on the posterior mean (latents are
    # normalised per channel afterwards, and the denoiser trains on the mean: _latents_wan).
    "wan": Organism(build_tiny_wan, "transformer", 9, _clips, _register_wan_scale, _latents_wan,
                    _noise_flow, _text_umt5, _predict_dit, "flow_velocity", 8, False,
                    "b f h w -> b 1 f h w"),
    # Wan 2.2 TI2V conditioning (WanImageToVideoPipeline(expand_timesteps=True)), fine-tuned from moft-tiny-wan.
    "wan-i2v": Organism(_build_wan_i2v, "transformer", 9, _clips, _register_wan_scale, _latents_wan,
                        _noise_flow_i2v, _text_umt5, _predict_dit, "flow_velocity", 8, False,
                        "b f h w -> b 1 f h w", image_frames=1, vae_from_build=True),
}
WAN_I2V_START = SHIPPED_DIR / "moft-tiny-wan"  # wan-i2v's start (a folder written by ship_model.py --organism wan)


class EMA:
    """Exponential moving average of parameters (with the usual warm-up)."""

    def __init__(self, modules: dict[str, torch.nn.Module], decay: float):
        self.decay = decay
        self.shadow = {k: copy.deepcopy(m).eval().requires_grad_(False) for k, m in modules.items()}

    @torch.no_grad()
    def update(self, modules: dict[str, torch.nn.Module], step: int):
        d = min(self.decay, (1 + step) / (10 + step))
        for k, m in modules.items():
            for s, p in zip(self.shadow[k].parameters(), m.parameters()):
                s.lerp_(p.detach(), 1 - d)


def object_weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """MSE with each latent position weighted, normalised by the mean weight (same scale as plain MSE).

    Example:
        >>> w = torch.from_numpy(object_weights(masks, (16, 16), 10.0))  # doctest: +SKIP
        >>> loss = object_weighted_mse(pred, target, w)  # doctest: +SKIP

    Args:
        pred, target: ``(B, C, F, h, w)`` latents.
        weights: ``(B, F, h, w)``, from ``moft.io.synthetic.object_weights`` (all ones: plain MSE).
    """
    w = rearrange(weights.to(pred.dtype), "b f h w -> b 1 f h w")
    return (w * (pred - target) ** 2).mean() / w.mean()


@torch.no_grad()
def sample_grid(pipe, organism: Organism, path: Path, seed: int = 0):
    import imageio.v3 as iio  # noqa: PLC0415

    prompts = ["a red disk moving right", "a blue square moving left", "a yellow disk moving up",
               "a green square moving down", "a white disk moving up right", "a purple disk standing still",
               "a orange square, the whole scene moving left", "a cyan disk moving right then left"]
    kwargs = dict(num_frames=organism.sample_frames, height=32, width=32, num_inference_steps=25, guidance_scale=4.0,
                  output_type="np")
    if organism.image_frames:  # image-to-video: frame 0 of a clip per prompt (the stock call takes one image)
        rng = np.random.default_rng(seed)
        clips = [make_clip(rng, kind="object", n_frames=organism.frames, describe_motion=True) for _ in prompts]
        out = [pipe(image=to_pil(c.frames[0]), prompt=c.caption, generator=torch.Generator().manual_seed(seed + i),
                    **kwargs).frames[0] for i, c in enumerate(clips)]
    else:
        out = pipe(prompt=prompts, generator=torch.Generator().manual_seed(seed), **kwargs).frames
    grid = rearrange(np.asarray(out), "b f h w c -> f h (b w) c")  # (F, H, B*W, 3)
    iio.imwrite(path, (grid * 255).round().astype(np.uint8), duration=250, loop=0)


def to_pil(frame: np.ndarray):
    """``(H, W, 3)`` in [0, 1] -> a PIL image (what ``WanImageToVideoPipeline`` takes as ``image``)."""
    from PIL import Image  # noqa: PLC0415

    return Image.fromarray((frame * 255).round().astype(np.uint8))


def draw_batch(rng: np.random.Generator, args, organism: Organism):
    """One training batch: frames ``(B, F, H, W, 3)`` in [0, 1], captions (some dropped for CFG), masks ``(B, F, H, W)``."""
    clips = [make_clip(rng, n_frames=organism.frames, kind_weights=args.mix, describe_prob=args.describe,
                       cross_prob=args.cross) for _ in range(args.batch)]
    captions = ["" if rng.random() < args.drop_caption else c.caption for c in clips]
    return np.stack([c.frames for c in clips]), captions, np.stack([c.masks for c in clips])


class WorkerBatches(torch.utils.data.IterableDataset):
    """Endless batches from ``--workers`` processes, worker ``k`` drawing from ``default_rng([seed, step, k])``."""

    def __init__(self, args, organism: Organism, step: int):
        self.args, self.organism, self.step = args, organism, step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.args.seed, self.step, info.id if info else 0])
        while True:
            yield draw_batch(rng, self.args, self.organism)


def _as_is(batch):
    return batch  # numpy arrays stay numpy (the default would make them tensors)


def batches(args, organism: Organism, rng: np.random.Generator, step: int):
    """The training batches: from the run's own stream (``--workers 0``) or from worker processes."""
    if args.workers == 0:
        while True:
            yield draw_batch(rng, args, organism)
    loader = torch.utils.data.DataLoader(WorkerBatches(args, organism, step), batch_size=None, collate_fn=_as_is,
                                         num_workers=args.workers, prefetch_factor=4, persistent_workers=True)
    yield from loader


def export(args, pipe, organism: Organism, ema_state, path: Path):
    getattr(pipe, organism.denoiser).load_state_dict(ema_state[organism.denoiser])
    pipe.text_encoder.load_state_dict(ema_state["text_encoder"])
    pipe.save_pretrained(path, safe_serialization=True)
    (path / "TRAINING.json").write_text(json.dumps(ema_state.get("meta", {}), indent=2))
    defaults = path / "moft.json"  # the clip size moft samples at (ship_model.py adds the rest)
    known = json.loads(defaults.read_text()) if defaults.exists() else {}
    defaults.write_text(json.dumps({"frames": organism.frames, "height": 32, "width": 32, **known}, indent=2))


def main():
    args = parse_args()
    organism = ORGANISMS[args.organism]
    torch.set_num_threads(args.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator()
    device = accelerator.device
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # GPUs only; no-op on CPU
    torch.manual_seed(args.seed)
    pipe = organism.build(seed=args.seed).to(device)
    if organism.vae_from_build and not (args.run / "vae" / "config.json").exists():
        pipe.vae.save_pretrained(args.run / "vae")  # the run's VAE (train_vae loads it and trains nothing)
        log(args.run, stage="vae_from_build", organism=args.organism, start=str(WAN_I2V_START))
    pipe.vae = tune_vae_decoder(args, train_vae(args, pipe, organism).to(device), organism).eval().requires_grad_(False)
    if args.vae_only:
        print(f"VAE stages done: {args.run / 'vae'}")
        return
    pipe.set_progress_bar_config(disable=True)

    net, text_encoder = getattr(pipe, organism.denoiser), pipe.text_encoder
    name = organism.denoiser
    params = list(net.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ema = EMA({name: net, "text_encoder": text_encoder}, args.ema)
    step, rng, cpu_seconds, gpu_seconds, phases = 0, np.random.default_rng(args.seed + 2), 0.0, 0.0, []
    ckpt = args.run / f"{name}_ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False, map_location=device)
        net.load_state_dict(state[name]), text_encoder.load_state_dict(state["text_encoder"])
        if "opt" in state:  # a --seed-checkpoint keeps the weights only: AdamW and the EMA start afresh
            opt.load_state_dict(state["opt"])
        for k in ema.shadow:
            ema.shadow[k].load_state_dict(state["ema"][k] if "ema" in state else
                                          {name: net, "text_encoder": text_encoder}[k].state_dict())
        step, cpu_seconds = state["step"], state.get("cpu_seconds", 0.0)
        gpu_seconds = state.get("gpu_seconds", 0.0)
        rng = state.get("rng", np.random.default_rng(args.seed + 3 + step))
        phases = state.get("phases", [{"from_step": 0, "mix": None, "describe": 0.8, "lr": args.lr,
                                       "lr_late": args.lr_late, "late_step": args.late_step}])
        for ph in phases:
            ph.setdefault("text_encoder", "trained")  # phases recorded before these options existed
            ph.setdefault("cross", 0.0)
            ph.setdefault("t_min", 0)
            ph.setdefault("object_weight", 0.0)
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"].cpu())

    if args.seed_checkpoint is not None:  # a small, committable resumption point: weights, step, recipe
        args.seed_checkpoint.mkdir(parents=True, exist_ok=True)
        atomic_save({name: net.state_dict(), "text_encoder": text_encoder.state_dict(), "step": step,
                     "cpu_seconds": cpu_seconds, "gpu_seconds": gpu_seconds, "phases": phases},
                    args.seed_checkpoint / ckpt.name)
        pipe.vae.save_pretrained(args.seed_checkpoint / "vae")
        print(f"wrote the weights of step {step} and the VAE to {args.seed_checkpoint}; resume with a copy as --run")
        return

    def ema_state():
        return {k: m.state_dict() for k, m in ema.shadow.items()} | {
            "meta": {f"{name}_steps": step, "vae_steps": args.vae_steps, "vae_decoder_steps": decoder_steps(args.run),
                     "ema": args.ema,  # batch, lr: per phase
                     f"cpu_seconds_{name}": cpu_seconds, f"gpu_seconds_{name}": gpu_seconds, "prediction_type": organism.prediction_type,
                     "frames": organism.frames, "phases": phases}
            | ({"start": f"{WAN_I2V_START.name} (its EMA transformer, VAE and text encoder)"}
               if organism.vae_from_build else {})}

    if args.export is not None:
        weights = ema_state()
        if args.export_weights == "raw":
            weights |= {name: net.state_dict(), "text_encoder": text_encoder.state_dict()}
        export(args, pipe, organism, weights, args.export)
        print(f"exported {args.export_weights} weights of step {step} to {args.export}")
        return

    phase = {"from_step": step, "mix": args.mix, "describe": args.describe, "lr": args.lr,
             "lr_late": args.lr_late, "late_step": args.late_step, "text_encoder": args.text_encoder,
             "cross": args.cross, "t_min": args.t_min,
             "object_weight": args.object_weight, "batch": args.batch,
             "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type}
    def recipe(ph):  # phases recorded before batch and device were kept ran at --batch 16 on the CPU
        return {"batch": 16, "device": "cpu"} | {k: v for k, v in ph.items() if k != "from_step"}

    if not phases or recipe(phases[-1]) != recipe(phase):
        if phases and args.text_encoder == "frozen" and phases[-1]["text_encoder"] == "trained":
            fresh = organism.build(seed=args.seed).text_encoder.state_dict()  # its random initialisation
            text_encoder.load_state_dict(fresh), ema.shadow["text_encoder"].load_state_dict(fresh)
        phases.append(phase)  # the recipe, phase by phase (the data mix may change on resume)
        log(args.run, stage="phase", **phase)
    train_text = args.text_encoder == "trained"
    text_encoder.requires_grad_(train_text)  # frozen: AdamW skips parameters without gradients
    text_cache: dict[str, torch.Tensor] = {}  # frozen encoder: one embedding per caption

    def embed(captions):
        if train_text:
            return organism.text(pipe, text_encoder, captions)
        with torch.no_grad():
            new = sorted(set(captions) - set(text_cache))
            if new:
                text_cache.update(zip(new, organism.text(pipe, text_encoder, new)))
        return torch.stack([text_cache[c] for c in captions])  # (B, L, D)

    net, text_encoder, opt = accelerator.prepare(net, text_encoder, opt)
    sched = pipe.scheduler
    vae = pipe.vae
    net.train(), text_encoder.train(train_text)
    def save_checkpoint():
        atomic_save({name: accelerator.unwrap_model(net).state_dict(),
                     "text_encoder": accelerator.unwrap_model(text_encoder).state_dict(),
                     "opt": opt.state_dict(), "ema": {k: m.state_dict() for k, m in ema.shadow.items()},
                     "step": step, "rng": rng, "torch_rng": torch.get_rng_state(),
                     "cpu_seconds": cpu_seconds, "gpu_seconds": gpu_seconds, "phases": phases}, ckpt)

    t_start = t_last = time.time()
    cpu_last = time.process_time()
    data = batches(args, organism, rng, step)
    while step < args.steps:
        lr = args.lr if step < args.late_step else args.lr_late
        for g in opt.param_groups:
            g["lr"] = lr
        frames, captions, masks = next(data)  # (B, F, H, W, 3), B captions, (B, F, H, W)
        z = organism.latents(vae, frames)  # (B, C, F, h, w)
        noise = torch.randn_like(z)
        noisy, t, target = organism.noise(sched, z, noise, args.t_min)
        pred = organism.predict(net, noisy, t, embed(captions))
        weights = object_weights(masks, z.shape[-2:], args.object_weight)  # (B, F, h, w)
        weights[:, :organism.image_frames] = 0  # the image's frames are given, not predicted
        loss = object_weighted_mse(pred, target, torch.from_numpy(weights).to(device))
        opt.zero_grad()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema.update({name: accelerator.unwrap_model(net), "text_encoder": accelerator.unwrap_model(text_encoder)}, step)
        if step % 20 == 0:
            now, cpu_now = time.time(), time.process_time()
            if device.type == "cuda":
                gpu_seconds += now - t_last  # the wall time a GPU was held (the workers' CPU time is not counted)
            else:
                cpu_seconds += cpu_now - cpu_last
            log(args.run, stage=name, step=step, loss=loss.item(), lr=lr, sec_per_step=(now - t_last) / 20,
                cpu_seconds=cpu_seconds, gpu_seconds=gpu_seconds)
            t_last, cpu_last = now, cpu_now
        out_of_time = args.max_minutes is not None and time.time() - t_start > 60 * args.max_minutes
        if step % args.ckpt_every == 0 or out_of_time:
            save_checkpoint()
        if out_of_time:
            print(f"stopped at step {step} after {args.max_minutes} minutes (checkpointed)")
            break
        if step % args.sample_every == 0:
            settings = {k: v for k, v in pipe.config.items() if not k.startswith("_") and k not in pipe.components}
            sample_pipe = type(pipe)(**{**pipe.components, **settings, name: ema.shadow[name],
                                        "text_encoder": ema.shadow["text_encoder"]})  # expand_timesteps kept
            sample_pipe.set_progress_bar_config(disable=True)
            (args.run / "samples").mkdir(exist_ok=True)
            sample_grid(sample_pipe, organism, args.run / "samples" / f"step{step:06d}.gif")


if __name__ == "__main__":
    main()

"""Train moft's shipped model: a small AnimateDiff pipeline on synthetic motion videos.

Stages (each resumable): (1) a small AutoencoderKL on frames (32x32x3 -> 16x16x4), (2) the
UNetMotionModel and the CLIP text encoder on VAE latents with v-prediction and EMA weights,
(3) export of the EMA weights as a diffusers pipeline folder (``save_pretrained``).

Usage:
    python scripts/train_shipped_model.py --run runs/shipped            # train (resumes if present)
    python scripts/train_shipped_model.py --run runs/shipped --export src/moft/shipped/moft-tiny
    accelerate launch scripts/train_shipped_model.py --run runs/big      # same script on GPUs

Logs go to RUN/log.jsonl (loss, seconds, CPU-seconds) and sample grids to RUN/samples/.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from einops import rearrange

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from moft.models import build_tiny_animatediff  # noqa: E402
from moft.synthetic import make_batch, make_clip, object_weights  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/shipped"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vae-steps", type=int, default=1200)
    p.add_argument("--vae-batch", type=int, default=64, help="frames per VAE step")
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


def train_vae(args, pipe, accelerator):
    vae_dir = args.run / "vae"
    if (vae_dir / "config.json").exists():
        return pipe.vae.__class__.from_pretrained(vae_dir)
    vae = pipe.vae
    ckpt = args.run / "vae_ckpt.pt"
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    step, rng = 0, np.random.default_rng(args.seed + 1)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        vae.load_state_dict(state["vae"]), opt.load_state_dict(state["opt"])
        step, rng = state["step"], state["rng"]
    vae.train()
    t0 = time.time()
    while step < args.vae_steps:
        frames, _ = make_batch(rng, args.vae_batch // 8)
        x = torch.from_numpy(rearrange(frames, "b f h w c -> (b f) c h w")) * 2 - 1  # (B*F, 3, H, W)
        post = vae.encode(x).latent_dist
        recon = vae.decode(post.sample()).sample
        loss = F.mse_loss(recon, x) + 0.1 * F.l1_loss(recon, x) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step == int(args.vae_steps * 0.8):
            for g in opt.param_groups:
                g["lr"] = 2e-4
        if step % 100 == 0 or step == args.vae_steps:
            log(args.run, stage="vae", step=step, loss=loss.item(), psnr=float(-10 * np.log10(F.mse_loss(recon, x).item() / 4)),
                seconds=time.time() - t0)
            atomic_save({"vae": vae.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng}, ckpt)
    # latent scale: unit variance of scaled latents, as SD's 0.18215 does for its VAE
    vae.eval()
    with torch.no_grad():
        frames, _ = make_batch(np.random.default_rng(12345), 32)
        x = torch.from_numpy(rearrange(frames, "b f h w c -> (b f) c h w")) * 2 - 1
        z = vae.encode(x).latent_dist.mode()
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    log(args.run, stage="vae_done", scaling_factor=float(1.0 / z.std()))
    vae.save_pretrained(vae_dir)
    return vae


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
        weights: ``(B, F, h, w)``, from ``moft.synthetic.object_weights`` (all ones: plain MSE).
    """
    w = rearrange(weights.to(pred.dtype), "b f h w -> b 1 f h w")
    return (w * (pred - target) ** 2).mean() / w.mean()


def encode_text(pipe, text_encoder, captions):
    ids = pipe.tokenizer(captions, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids).last_hidden_state  # (B, L, D)


@torch.no_grad()
def sample_grid(pipe, path: Path, seed: int = 0):
    import imageio.v3 as iio  # noqa: PLC0415

    prompts = ["a red disk moving right", "a blue square moving left", "a yellow disk moving up",
               "a green square moving down", "a white disk moving up right", "a purple disk standing still",
               "a orange square, the whole scene moving left", "a cyan disk moving right then left"]
    out = pipe(prompt=prompts, num_frames=8, height=32, width=32, num_inference_steps=25, guidance_scale=4.0,
               generator=torch.Generator().manual_seed(seed), output_type="np").frames  # (B, F, H, W, 3)
    grid = rearrange(np.asarray(out), "b f h w c -> f h (b w) c")
    iio.imwrite(path, (grid * 255).round().astype(np.uint8), duration=250, loop=0)


def export(args, pipe, ema_state, path: Path):
    pipe.unet.load_state_dict(ema_state["unet"])
    pipe.text_encoder.load_state_dict(ema_state["text_encoder"])
    pipe.save_pretrained(path, safe_serialization=True)
    (path / "TRAINING.json").write_text(json.dumps(ema_state.get("meta", {}), indent=2))


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator()
    torch.manual_seed(args.seed)
    pipe = build_tiny_animatediff(seed=args.seed)
    pipe.vae = train_vae(args, pipe, accelerator).eval().requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)

    unet, text_encoder = pipe.unet, pipe.text_encoder
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ema = EMA({"unet": unet, "text_encoder": text_encoder}, args.ema)
    step, rng, cpu_seconds, phases = 0, np.random.default_rng(args.seed + 2), 0.0, []
    ckpt = args.run / "unet_ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        unet.load_state_dict(state["unet"]), text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        for k in ema.shadow:
            ema.shadow[k].load_state_dict(state["ema"][k])
        step, rng, cpu_seconds = state["step"], state["rng"], state.get("cpu_seconds", 0.0)
        phases = state.get("phases", [{"from_step": 0, "mix": None, "describe": 0.8, "lr": args.lr,
                                       "lr_late": args.lr_late, "late_step": args.late_step}])
        for ph in phases:
            ph.setdefault("text_encoder", "trained")  # phases recorded before these options existed
            ph.setdefault("cross", 0.0)
            ph.setdefault("t_min", 0)
            ph.setdefault("object_weight", 0.0)
        torch.set_rng_state(state["torch_rng"])

    def ema_state():
        return {k: m.state_dict() for k, m in ema.shadow.items()} | {
            "meta": {"unet_steps": step, "batch": args.batch, "vae_steps": args.vae_steps, "lr": args.lr,
                     "lr_late": args.lr_late, "late_step": args.late_step, "ema": args.ema,
                     "cpu_seconds_unet": cpu_seconds, "prediction_type": "v_prediction", "phases": phases}}

    if args.export is not None:
        weights = ema_state()
        if args.export_weights == "raw":
            weights |= {"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict()}
        export(args, pipe, weights, args.export)
        print(f"exported {args.export_weights} weights of step {step} to {args.export}")
        return

    phase = {"from_step": step, "mix": args.mix, "describe": args.describe, "lr": args.lr,
             "lr_late": args.lr_late, "late_step": args.late_step, "text_encoder": args.text_encoder,
             "cross": args.cross, "t_min": args.t_min,
             "object_weight": args.object_weight}
    def recipe(ph):
        return {k: v for k, v in ph.items() if k != "from_step"}

    if not phases or recipe(phases[-1]) != recipe(phase):
        if phases and args.text_encoder == "frozen" and phases[-1]["text_encoder"] == "trained":
            fresh = build_tiny_animatediff(seed=args.seed).text_encoder.state_dict()  # its random initialisation
            text_encoder.load_state_dict(fresh), ema.shadow["text_encoder"].load_state_dict(fresh)
        phases.append(phase)  # the recipe, phase by phase (the data mix may change on resume)
        log(args.run, stage="phase", **phase)
    train_text = args.text_encoder == "trained"
    text_encoder.requires_grad_(train_text)  # frozen: AdamW skips parameters without gradients
    unet, text_encoder, opt = accelerator.prepare(unet, text_encoder, opt)
    sched = pipe.scheduler
    vae, sf = pipe.vae, pipe.vae.config.scaling_factor
    unet.train(), text_encoder.train(train_text)
    t_last, cpu_last = time.time(), time.process_time()
    while step < args.steps:
        lr = args.lr if step < args.late_step else args.lr_late
        for g in opt.param_groups:
            g["lr"] = lr
        clips = [make_clip(rng, kind_weights=args.mix, describe_prob=args.describe, cross_prob=args.cross)
                 for _ in range(args.batch)]
        frames, captions = np.stack([c.frames for c in clips]), [c.caption for c in clips]  # (B, F, H, W, 3)
        captions = ["" if rng.random() < args.drop_caption else c for c in captions]
        b, f = frames.shape[:2]
        with torch.no_grad():
            x = torch.from_numpy(rearrange(frames, "b f h w c -> (b f) c h w")) * 2 - 1
            z = vae.encode(x).latent_dist.sample() * sf
            z = rearrange(z, "(b f) c h w -> b c f h w", b=b)  # (B, C, F, h, w)
        noise = torch.randn_like(z)
        t = torch.randint(args.t_min, sched.config.num_train_timesteps, (b,))
        noisy = sched.add_noise(z, noise, t)
        target = sched.get_velocity(z, noise, t)
        with torch.set_grad_enabled(train_text):
            emb = encode_text(pipe, text_encoder, captions).repeat_interleave(f, dim=0)  # (B*F, L, D)
        pred = unet(noisy, t, encoder_hidden_states=emb).sample
        weights = object_weights(np.stack([c.masks for c in clips]), z.shape[-2:], args.object_weight)  # (B, F, h, w)
        loss = object_weighted_mse(pred, target, torch.from_numpy(weights))
        opt.zero_grad()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema.update({"unet": accelerator.unwrap_model(unet), "text_encoder": accelerator.unwrap_model(text_encoder)}, step)
        if step % 20 == 0:
            now, cpu_now = time.time(), time.process_time()
            cpu_seconds += cpu_now - cpu_last
            log(args.run, stage="unet", step=step, loss=loss.item(), lr=lr, sec_per_step=(now - t_last) / 20,
                cpu_seconds=cpu_seconds)
            t_last, cpu_last = now, cpu_now
        if step % args.ckpt_every == 0:
            atomic_save({"unet": accelerator.unwrap_model(unet).state_dict(),
                         "text_encoder": accelerator.unwrap_model(text_encoder).state_dict(),
                         "opt": opt.state_dict(), "ema": {k: m.state_dict() for k, m in ema.shadow.items()},
                         "step": step, "rng": rng, "torch_rng": torch.get_rng_state(),
                         "cpu_seconds": cpu_seconds, "phases": phases}, ckpt)
        if step % args.sample_every == 0:
            sample_pipe = type(pipe)(vae=vae, text_encoder=ema.shadow["text_encoder"], tokenizer=pipe.tokenizer,
                                     unet=ema.shadow["unet"], motion_adapter=None, scheduler=sched)
            sample_pipe.set_progress_bar_config(disable=True)
            (args.run / "samples").mkdir(exist_ok=True)
            sample_grid(sample_pipe, args.run / "samples" / f"step{step:06d}.gif")


if __name__ == "__main__":
    main()

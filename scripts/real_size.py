"""Real-size cost of guided sampling: wall time and peak memory on the published full-size denoisers.

Usage:
    python scripts/real_size.py --tiny --out docs/results/real_size     # CPU, tiny models, ~1 min (CI: a few s)
    python scripts/real_size.py --device cuda --config wan2.1-t2v-1.3b --steps 10 --max-seconds 420 \\
        --levers bf16,bf16+checkpointing,bf16+model_offload,none --out docs/results/real_size

The device check (one H200, at most ~8 minutes with ``--max-seconds 420``; rows past the budget are written
as "not measured: time budget"; the command is the second line above). If the device lacks diffusers,
transformers or accelerate, carry wheels as ``training/moft-tiny-wan/resume_on_gpu.sh`` does
(``pip download diffusers==0.42.1 transformers==5.23.0 accelerate==1.15.0 safetensors einops typer --no-deps
-d wheels/`` here, ``pip install --no-deps wheels/*.whl`` there) and keep the device's own torch.

What is measured. Each named config (``CONFIGS``) is the published denoiser (``configs/``) built on the meta
device and materialised on ``--device`` with random weights (normal, std 0.02; norms 1, biases 0): random
weights cost what real weights cost. It sits in a pipeline of its own class with a tiny VAE and a
one-layer text encoder of the denoiser's text width (stand-ins: no checkpoint is read), sized so the latent
grid is the real one (e.g. Wan-1.3B at 480x832x81: 21 latent frames of 60x104). Each row runs
``moft.method.sampler.sample`` once from the same noise:
    unguided   CFG sampling over ``--steps`` steps
    guided     the same plus the shipped-style guidance: a per-position target of the right shape with random
               values (drag-style; the cost of a target does not depend on its values), cosine distance, 4 Adam
               iterations at each guided step, guided steps 3:12 of 25 scaled to ``--steps``, no shared K/V
with levers (``+``-joined): ``bf16`` / ``fp16`` (the denoiser's weights; latents, loss and Adam state float32),
``autocast`` (bfloat16 autocast of the loss forward, float32 weights), ``checkpointing`` (the denoiser's own
gradient checkpointing during guidance), ``model_offload`` / ``group_offload`` (the pipeline's own
``enable_model_cpu_offload`` / block-level ``enable_group_offload``; accelerators only). Wall time is the
denoising loop (``SampleResult.seconds``; the stand-in VAE's decode and the text encoding are outside it);
peak memory is ``torch.cuda.max_memory_allocated`` over the whole ``sample`` call on CUDA, and VmHWM (peak
RSS since a reset) on the CPU, so CPU rows include the weights and the Python process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from moft.method.capture import capture
from moft.models.adapters import call_denoiser
from moft.io.jsonio import strict_json
from moft.method.sampler import GuidanceConfig, sample
from moft.method.targets import Target
from moft.models.device import dtype_name, resolve_device
from moft.models.latents import initial_noise, probe_conditioning
from moft.models.pipeline import denoiser, pipeline_site
from moft.models.loading import place

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = [  # published costs on one GPU (80 GB class), Wan2.1-T2V-1.3B at 480x832x81, 50 steps
    ("MOFT (as run in FlowMotion's table)", "Wan-1.3B 480×832×81", "75 GB", "576 s (596 s in FastVMT's table)"),
    ("FlowMotion", "Wan-1.3B 480×832×81", "19.3 GB", "213 s"),
    ("FlowMotion with CPU offload", "Wan-1.3B 480×832×81", "4.9 GB", "–"),
]
GPU_COMMAND = ("python scripts/real_size.py --device cuda --config wan2.1-t2v-1.3b --steps 10 --max-seconds 420 "
               "--levers bf16,bf16+checkpointing,bf16+model_offload,none --out docs/results/real_size")
LEVERS = ("bf16", "fp16", "autocast", "checkpointing", "model_offload", "group_offload")


@dataclass(frozen=True)
class Config:
    """A full-size denoiser at its native video size.

    Attributes:
        family: ``animatediff``, ``zeroscope``, ``wan`` or ``cogvideox`` (which pipeline hosts it).
        files: its config files under ``configs/`` (AnimateDiff: the SD-1.5 U-Net and the motion adapter).
        frames, height, width: the native video size in pixels and frames.
        latent: the latent grid ``(F', h, w)`` the model's own VAE makes of it.
        steps: the model's usual number of sampling steps.
    """

    family: str
    files: tuple
    frames: int
    height: int
    width: int
    latent: tuple
    steps: int


CONFIGS = {
    "animatediff": Config("animatediff", ("animatediff-sd15-unet.json", "animatediff-motion-adapter-v1-5-2.json"),
                          16, 512, 512, (16, 64, 64), 25),
    "zeroscope": Config("zeroscope", ("zeroscope-v2-unet3d.json",), 24, 320, 576, (24, 40, 72), 40),
    "wan2.1-t2v-1.3b": Config("wan", ("wan2.1-t2v-1.3b-transformer.json",), 81, 480, 832, (21, 60, 104), 50),
    "wan2.1-t2v-14b": Config("wan", ("wan2.1-t2v-14b-transformer.json",), 81, 480, 832, (21, 60, 104), 50),
    "cogvideox-5b": Config("cogvideox", ("cogvideox-5b-transformer.json",), 49, 480, 720, (13, 60, 90), 50),
}
TINY = {  # the CI mode: the shipped organisms' architectures at their own size, random weights, on the CPU
    "tiny-animatediff": Config("animatediff", (), 8, 32, 32, (8, 16, 16), 25),
    "tiny-wan": Config("wan", (), 9, 32, 32, (9, 16, 16), 25),
}


def materialise(net: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """Give a meta-device module random weights on ``device`` (normal std 0.02; 1-D norm weights 1, biases 0),
    in ``dtype`` except the modules the model keeps in float32 (``_keep_in_fp32_modules``)."""
    from accelerate.utils import set_module_tensor_to_device

    gen = torch.Generator(device).manual_seed(seed)
    keep = getattr(net, "_keep_in_fp32_modules", None) or []  # as from_pretrained(dtype=...) keeps them
    for name, p in list(net.named_parameters()):
        kind = torch.float32 if any(k in name.split(".") for k in keep) else dtype
        value = torch.empty(p.shape, device=device, dtype=kind)
        if name.endswith("bias"):
            value.zero_()
        elif p.ndim == 1 and "norm" in name:
            value.fill_(1.0)
        else:
            value.normal_(0.0, 0.02, generator=gen)
        set_module_tensor_to_device(net, name, device, value=value, dtype=kind)
    for mod_name, module in net.named_modules():  # buffers (e.g. positional tables) were built for real on the CPU
        for name, buf in list(module._buffers.items()):
            if buf is not None and buf.is_floating_point() and not any(k in mod_name.split(".") for k in keep):
                module._buffers[name] = buf.to(dtype)  # as .to(dtype) would (a float32 table would promote activations)
    return net.to(device).eval()


def build_denoiser(cfg: Config, base):
    """The config's denoiser on the meta device (parameters only; buffers real), or the tiny one's config."""
    from accelerate import init_empty_weights
    from diffusers import (CogVideoXTransformer3DModel, MotionAdapter, UNet2DConditionModel, UNet3DConditionModel,
                           UNetMotionModel, WanTransformer3DModel)

    read = lambda f: json.loads((ROOT / "configs" / f).read_text())  # noqa: E731
    with init_empty_weights():
        if not cfg.files:
            net = denoiser(base)
            return type(net).from_config(net.config)
        if cfg.family == "animatediff":  # what AnimateDiffPipeline does, without weights
            return UNetMotionModel.from_unet2d(UNet2DConditionModel.from_config(read(cfg.files[0])),
                                               MotionAdapter.from_config(read(cfg.files[1])), load_weights=False)
        cls = {"zeroscope": UNet3DConditionModel, "wan": WanTransformer3DModel,
               "cogvideox": CogVideoXTransformer3DModel}[cfg.family]
        return cls.from_config(read(cfg.files[0]))


def host_pipeline(cfg: Config, net):
    """A pipeline of the config's class around ``net``: tiny VAE, one-layer text encoder of the right width."""
    from moft.models.tiny import build_tiny_animatediff, build_tiny_wan

    if cfg.family == "wan":
        from transformers import UMT5Config, UMT5EncoderModel

        z = net.config.in_channels
        base = build_tiny_wan(vae={"z_dim": z, "latents_mean": [0.0] * z, "latents_std": [1.0] * z} if z != 4 else None)
        width = net.config.text_dim
        tok = base.tokenizer
        if width != base.text_encoder.config.d_model:
            base.text_encoder = UMT5EncoderModel(UMT5Config(
                vocab_size=len(tok), d_model=width, d_kv=64, d_ff=256, num_layers=1, num_heads=8, dropout_rate=0.0,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
        base.transformer = net
        return base
    if cfg.family in ("animatediff", "zeroscope"):
        from diffusers import TextToVideoSDPipeline
        from transformers import CLIPTextConfig, CLIPTextModel

        base = build_tiny_animatediff()
        tok, width = base.tokenizer, net.config.cross_attention_dim
        text = base.text_encoder
        if width != text.config.hidden_size:
            text = CLIPTextModel(CLIPTextConfig(
                vocab_size=len(tok), hidden_size=width, intermediate_size=256, num_hidden_layers=1,
                num_attention_heads=8, max_position_embeddings=text.config.max_position_embeddings,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
        if cfg.family == "animatediff":
            return type(base)(vae=base.vae, text_encoder=text, tokenizer=tok, unet=net, motion_adapter=None,
                              scheduler=base.scheduler)
        return TextToVideoSDPipeline(vae=base.vae, text_encoder=text, tokenizer=tok, unet=net, scheduler=base.scheduler)
    return cogvideox_host(net)


def cogvideox_host(net):
    """CogVideoX: a tiny 4x-temporal VAE (4x spatial), a one-layer T5 of the text width, v-prediction DDIM."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline
    from transformers import T5Config, T5EncoderModel

    from moft.models.tiny.tokenizer import build_t5_tokenizer

    tok = build_t5_tokenizer(max_length=226)
    text = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=net.config.text_embed_dim, d_kv=64, d_ff=256,
                                   num_layers=1, num_heads=8, dropout_rate=0.0, pad_token_id=tok.pad_token_id,
                                   eos_token_id=tok.eos_token_id))
    vae = AutoencoderKLCogVideoX(down_block_types=("CogVideoXDownBlock3D",) * 3,
                                 up_block_types=("CogVideoXUpBlock3D",) * 3, block_out_channels=(8, 8, 16),
                                 latent_channels=net.config.in_channels, layers_per_block=1, norm_num_groups=2,
                                 temporal_compression_ratio=4)
    sched = CogVideoXDDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing",
                                   rescale_betas_zero_snr=True, clip_sample=False, set_alpha_to_one=True,
                                   snr_shift_scale=3.0, beta_schedule="scaled_linear")
    return CogVideoXPipeline(tokenizer=tok, text_encoder=text, vae=vae, transformer=net, scheduler=sched)


def video_size(pipe, cfg: Config) -> tuple[int, int, int]:
    """Pixel frames and size that give the config's latent grid through the stand-in VAE."""
    from moft.models.pipeline import vae_scale

    f, h, w = cfg.latent
    s = vae_scale(pipe)
    temporal = getattr(pipe.vae.config, "temporal_compression_ratio", None) or \
        getattr(pipe.vae.config, "scale_factor_temporal", 1)
    frames = f if temporal == 1 or cfg.family in ("animatediff", "zeroscope") else (f - 1) * temporal + 1
    return frames, h * s, w * s


def parse_levers(text: str) -> frozenset:
    levers = frozenset(x for x in text.split("+") if x and x != "none")
    unknown = levers - set(LEVERS)
    if unknown:
        raise SystemExit(f"error: --levers: unknown {sorted(unknown)}; expected none or {'+'.join(LEVERS)} joined by +")
    return levers


@torch.no_grad()
def site_width(pipe, z: torch.Tensor) -> int:
    """Channels at the capture site: one early-exit forward on an 8x8 crop of the latents."""
    crop = z[..., :8, :8]  # (1, F', C, 8, 8)
    with capture(denoiser(pipe), pipeline_site(pipe), stop=True) as cap:
        call_denoiser(denoiser(pipe), crop, 500, probe_conditioning(pipe, crop))
    return int(cap.output.shape[2])


def reset_peak(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30, "cuda max_memory_allocated"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2 ** 20, "VmHWM (peak RSS since reset, whole process)"
    return math.nan, "unavailable"


def measure(name: str, cfg: Config, levers: frozenset, guided: bool, device: torch.device, steps: int, seed: int = 0):
    """One row: build the pipeline with the levers, sample once (unguided or guided), time and peak memory."""
    dtype = torch.bfloat16 if "bf16" in levers else torch.float16 if "fp16" in levers else torch.float32
    offload = "model" if "model_offload" in levers else "group" if "group_offload" in levers else "none"
    if offload != "none" and device.type == "cpu":
        return {"status": "not measured: offloading needs an accelerator (CPU to CPU moves nothing)"}
    build_device = torch.device("cpu") if offload != "none" else device
    t_build = time.perf_counter()
    torch.manual_seed(seed)
    base = None
    if not cfg.files:
        from moft.models.tiny import build_tiny_animatediff, build_tiny_wan

        base = build_tiny_wan() if cfg.family == "wan" else build_tiny_animatediff()
    net = materialise(build_denoiser(cfg, base), build_device, dtype, seed)
    pipe = host_pipeline(cfg, net)
    pipe.set_progress_bar_config(disable=True)
    place(pipe, device, offload=offload)
    build_s = time.perf_counter() - t_build
    frames, height, width = video_size(pipe, cfg)
    z = initial_noise(pipe, num_frames=frames, height=height, width=width, seed=seed)  # (1, F', C, h, w)
    target = guidance = None
    if guided:
        f, h, w = z.shape[1], z.shape[-2], z.shape[-1]
        mask = torch.zeros(1, h, w, dtype=torch.bool)
        mask[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
        c = site_width(pipe, z)
        maps = torch.randn(1, f, c, h, w, generator=torch.Generator().manual_seed(seed + 1))  # (R, F, C, h, w)
        target = Target(maps[:, :, :, mask[0]].mean(-1), mask, None, True, maps)
        start, end = round(3 * steps / 25), max(round(12 * steps / 25), round(3 * steps / 25) + 1)
        guidance = GuidanceConfig(steps=(start, end), iterations=4, step_size=0.15, optimizer="adam",
                                  loss="per_position", distance="cosine", shared_kv=False,
                                  checkpointing="checkpointing" in levers,
                                  autocast="bfloat16" if "autocast" in levers else None)
    reset_peak(device)
    t0 = time.perf_counter()
    out = sample(pipe, "a red disk moving left", latents=z, steps=steps, guidance_scale=5.0, target=target,
                 guidance=guidance, num_frames=frames, height=height, width=width)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - t0
    gib, how = peak(device)
    params = sum(p.numel() for p in net.parameters())
    del pipe, net, out.frames
    return {"status": "measured", "wall_s": round(out.seconds, 2), "sample_call_s": round(total, 2),
            "peak_gib": round(gib, 3), "peak_memory": how, "build_s": round(build_s, 1),
            "params_m": round(params / 1e6, 1), "dtype": dtype_name(dtype), "offload": offload,
            "guided_steps": list(guidance.steps) if guidance else None, "forwards": out.counts.get("forwards"),
            "backwards": out.counts.get("backwards"), "latents": list(z.shape[1:])}


def reference_levers(levers: frozenset) -> frozenset:
    """The unguided row a guided row is compared with: the same weights and offload (guidance-only levers off)."""
    return levers - {"checkpointing", "autocast"}


def run(args) -> dict:
    device = resolve_device(args.device)
    configs = TINY if args.tiny else CONFIGS
    names = list(configs) if args.config == "all" else args.config.split(",")
    lever_sets = [parse_levers(x) for x in args.levers.split(",")]
    today = datetime.date.today().isoformat()
    rows, started = [], time.perf_counter()
    for name in names:
        cfg = configs[name]
        steps = args.steps or cfg.steps
        plan = []
        for levers in lever_sets:
            ref = reference_levers(levers)
            if ("unguided", ref) not in plan:
                plan.append(("unguided", ref))
            plan.append(("guided", levers))
        for kind, levers in plan:
            row = {"config": name, "case": kind, "levers": "+".join(sorted(levers)) or "none", "device": str(device),
                   "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                   or platform.machine(), "steps": steps, "frames": cfg.frames, "size": f"{cfg.height}x{cfg.width}",
                   "date": today}
            if time.perf_counter() - started > args.max_seconds:
                row["status"] = f"not measured: time budget ({args.max_seconds} s) spent"
            else:
                try:
                    row.update(measure(name, cfg, levers, kind == "guided", device, steps))
                except torch.OutOfMemoryError as exc:
                    row["status"] = f"out of memory: {str(exc).splitlines()[0][:160]}"
                    torch.cuda.empty_cache()
                except Exception as exc:  # a lever that fails on this device is a result, not a crash
                    row["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            if row.get("status") == "measured" and kind == "guided":
                ref = next((r for r in rows if r["config"] == name and r["case"] == "unguided"
                            and r["levers"] == ("+".join(sorted(reference_levers(levers))) or "none")
                            and r.get("status") == "measured"), None)
                if ref is not None:
                    row["wall_ratio"] = round(row["wall_s"] / ref["wall_s"], 2)
                    row["peak_ratio"] = round(row["peak_gib"] / ref["peak_gib"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.tiny or device.type == "cpu":  # the full-size rows this run could not measure, and why
        for name, cfg in CONFIGS.items():
            rows.append({"config": name, "case": "unguided and guided", "levers": "all", "frames": cfg.frames,
                         "size": f"{cfg.height}x{cfg.width}", "steps": cfg.steps, "device": None, "date": today,
                         "status": f"not measured: no accelerator in this session ({today}; this run: {device}); "
                                   f"run `{GPU_COMMAND.replace('wan2.1-t2v-1.3b', name)}`"})
    load = [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"meta": {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                     "load_average_at_end": load,
                     "tiny": args.tiny, "steps": args.steps, "levers": args.levers, "date": today,
                     "wall": "denoising loop (SampleResult.seconds)",
                     "guidance": "random per-position target, cosine distance, 4 Adam iterations (lr 0.15) per "
                                 "guided step, guided steps 3:12 of 25 scaled to the steps, CFG 5, no shared K/V",
                     "gpu_command": GPU_COMMAND},
            "rows": rows}


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [f"# Real-size cost of guided sampling ({meta['date']}, torch {meta['torch']}, {meta['threads']} threads)",
             "", "Measured by `scripts/real_size.py` (random weights; how: its docstring). Wall: the denoising loop. "
             "Peak: `torch.cuda.max_memory_allocated` on CUDA, VmHWM (peak RSS of the whole process) on the CPU. "
             "Ratios: guided over the unguided row with the same weights dtype and offload. "
             f"Machine load average at the end: {meta.get('load_average_at_end')} (CPU wall times on a shared "
             "machine are inflated and noisy; read the CPU rows for the ratios' order, not for speed).", "",
             "| config | case | levers | device | dtype | steps | frames | size | latents | wall (s) | peak (GiB) "
             "| × unguided (wall) | × unguided (peak) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lat = "×".join(str(v) for v in r.get("latents", [])) or "–"
        lines.append(f"| {r['config']} | {r['case']} | {r['levers']} | {r.get('device') or '–'} "
                     f"({r.get('device_name') or '–'}) | {r.get('dtype', '–')} | {r['steps']} | {r['frames']} | "
                     f"{r['size']} | {lat} | {r.get('wall_s', '–')} | {r.get('peak_gib', '–')} | "
                     f"{r.get('wall_ratio', '–')} | {r.get('peak_ratio', '–')} | {r['status']} |")
    lines += ["", "Anchors (published; one 80 GB-class GPU, real weights, 50 steps; what moft's Wan-1.3B rows are "
              "to be read beside):", "", "| method | model and size | peak memory | time |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in ANCHORS]
    lines += ["", f"Device check, ready to run on one GPU (≤ 8 minutes): `{meta['gpu_command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="all", help=f"comma-separated: {', '.join(CONFIGS)} (or tiny-animatediff, "
                   "tiny-wan with --tiny); default all")
    p.add_argument("--tiny", action="store_true", help="the tiny organisms' architectures on the CPU (CI)")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's usual)")
    p.add_argument("--levers", default="none,checkpointing,autocast,bf16,bf16+checkpointing,model_offload",
                   help="comma-separated lever sets, each + joined")
    p.add_argument("--max-seconds", type=float, default=math.inf, help="rows after this much time are not measured")
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "real_size",
                   help="writes OUT.json and OUT.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(strict_json(report))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {args.out.with_suffix('.json')} and .md")
    return report


if __name__ == "__main__":
    main()

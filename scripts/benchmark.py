"""Speed and memory of guided sampling and of feature capture, measured side by side in one run.

Usage:
    python scripts/benchmark.py --out docs/benchmark.json                 # shipped model + full-size configs
    python scripts/benchmark.py --models moft-tiny --out /tmp/b.json      # shipped model only

For each model, each case runs in its own subprocess (so peak RSS is that case's own) with the same
seed, steps and prompt:
    unguided          plain DDIM + CFG
    guided (moft)     our loop: loss forward on the conditional half, early exit after the site
    guided (official) the official code's way: loss forward on the full CFG batch, no early exit
and reports wall time, peak RSS (``torch.cuda.max_memory_allocated`` on GPU), denoiser forward and
backward counts, and the ratios. Capture overhead: the same forward timed plainly and under
``moft.method.capture`` (detached), alternating, median of repeats.

Full-size models (``animatediff``, ``zeroscope``, ``wan-1.3b``) are the published configs under
``configs/`` with random weights, a one-layer text encoder of the right width and a tiny VAE, at small
latents, so their ratios mean what they mean on a GPU. ``wan-1.3b`` (Wan2.1-T2V-1.3B's transformer,
1.42B parameters, flow matching) also runs a fourth case, ``guided (moft, ckpt)``: our loop with
gradient checkpointing of the blocks. Its official-style loop is the same loss forward on the whole CFG
batch without early exit (DiTFlow and FlowMotion have no shared K/V; neither has moft on DiTs).

    python scripts/benchmark.py --models wan-1.3b --repeats 3 --out /tmp/wan.json

The shipped models also run what their users get: ``guided (shipped settings)`` (the model's moft.json, planned
by ``moft.front.control``: the source, drag target and keep levers built before the clock starts; the guided
sampling timed, a gradient-free cut-and-drag run included) and
``moft control (shipped defaults)``, the whole command's work (the unguided source video, the drag
proxy and its inversion, the guided sampling; forwards and backwards count the guided sampling only).
Threads: ``MOFT_BENCH_THREADS`` (default 2), stated in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "unguided": None,
    "guided (moft)": {"loss_batch": "cond", "early_exit": True},
    "guided (official)": {"loss_batch": "cfg", "early_exit": False},
}
FULL = {
    # name: (frames, latent side, steps, guided steps)
    "moft-tiny": (8, 16, 25, (3, 12)),
    "moft-tiny-wan": (9, 16, 25, (3, 12)),
    "animatediff": (16, 8, 10, (1, 5)),
    "zeroscope": (16, 8, 10, (1, 5)),
    "wan-1.3b": (5, 8, 3, (1, 2)),  # 5 latent frames of 8x8 -> 80 tokens; ~14 s a forward on one loaded CPU core
}
WIDTH = {"animatediff": 1280, "zeroscope": 1280, "wan-1.3b": 1536}  # channels at the default site
SHIPPED = ("moft-tiny", "moft-tiny-wan")  # loaded from the package, with their channels and moft.json
EXTRA_CASES = {
    "wan-1.3b": {"guided (moft, ckpt)": {"loss_batch": "cond", "early_exit": True, "checkpointing": True}},
    # what a user of a shipped model gets: its moft.json settings (target kind and guidance) for the sampling
    # alone, and the whole `moft control` (source video, drag proxy, inversion, sampling)
    **{m: {"guided (shipped settings)": "shipped", "moft control (shipped defaults)": "control"} for m in SHIPPED},
}
PROMPT = "a red disk standing still"  # the shipped model's default prompt (any prompt for random weights)


def cases(model: str) -> dict:
    """The cases benchmarked for ``model``."""
    return {**CASES, **EXTRA_CASES.get(model, {})}


def build_wan():
    """Wan2.1-T2V-1.3B's transformer (random weights) with a one-layer UMT5 of width 4096 and a tiny
    16-channel Wan VAE without temporal compression (so latent frames = video frames)."""
    from diffusers import WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from moft.models.tiny import build_tiny_wan

    tiny = build_tiny_wan(vae={"z_dim": 16, "latents_mean": [0.0] * 16, "latents_std": [1.0] * 16})
    net = WanTransformer3DModel.from_config(json.loads((ROOT / "configs" / "wan2.1-t2v-1.3b-transformer.json").read_text()))
    tok = tiny.tokenizer
    text = UMT5EncoderModel(UMT5Config(vocab_size=len(tok), d_model=4096, d_kv=64, d_ff=256, num_layers=1, num_heads=8,
                                       dropout_rate=0.0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    pipe = WanPipeline(tokenizer=tok, text_encoder=text, vae=tiny.vae, transformer=net.eval(), scheduler=tiny.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build(name: str):
    """The pipeline to benchmark (``moft-tiny`` and ``moft-tiny-wan`` load the shipped models)."""
    from moft.models.tiny import build_tiny_animatediff
    from moft.models.loading import load_pipeline

    if name in SHIPPED:
        return load_pipeline(name)
    if name == "wan-1.3b":
        return build_wan()
    from accelerate import init_empty_weights  # noqa: F401  (keeps diffusers' fast init path importable)
    from diffusers import MotionAdapter, TextToVideoSDPipeline, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = lambda f: json.loads((ROOT / "configs" / f).read_text())  # noqa: E731
    tiny = build_tiny_animatediff()
    if name == "animatediff":
        unet = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_config(cfg("animatediff-sd15-unet.json")),
                                           MotionAdapter.from_config(cfg("animatediff-motion-adapter-v1-5-2.json")))
    else:
        unet = UNet3DConditionModel.from_config(cfg("zeroscope-v2-unet3d.json"))
    width = unet.config.cross_attention_dim
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tiny.tokenizer), hidden_size=width, intermediate_size=256,
                                        num_hidden_layers=1, num_attention_heads=8, max_position_embeddings=20,
                                        bos_token_id=tiny.tokenizer.bos_token_id, eos_token_id=tiny.tokenizer.eos_token_id,
                                        pad_token_id=tiny.tokenizer.pad_token_id))
    unet.eval()
    if name == "animatediff":
        pipe = type(tiny)(vae=tiny.vae, text_encoder=text, tokenizer=tiny.tokenizer, unet=unet, motion_adapter=None,
                          scheduler=tiny.scheduler)
    else:
        pipe = TextToVideoSDPipeline(vae=tiny.vae, text_encoder=text, tokenizer=tiny.tokenizer, unet=unet,
                                     scheduler=tiny.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reset_peak_memory() -> None:
    """Start peak-memory accounting here: CUDA's counter, or Linux's VmHWM (``clear_refs`` 5), so the
    peak is the sampling's own and not the model build's."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass  # not Linux: falls back to the process-lifetime peak (ru_maxrss)


def peak_memory() -> tuple[int, str]:
    """Peak bytes since ``reset_peak_memory`` and what was measured."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(), "cuda max_memory_allocated"
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "VmHWM (peak RSS since reset)"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss (whole process)"


def shipped_defaults(model: str) -> dict:
    """What the shipped model's ``moft.json`` held when it was benchmarked: the chosen setting and its guidance."""
    from moft.models.pipeline import SHIPPED_DIR

    record = json.loads((SHIPPED_DIR / model / "moft.json").read_text())
    return {"setting": (record.get("guidance_chosen_by") or {}).get("setting"), "guidance": record.get("guidance"),
            "target": record.get("target")}


def one_case(model: str, case: str) -> dict:
    """Run one case in this process; print its JSON."""
    from moft.method.channels import MotionChannels
    from moft.models.latents import latent_channels
    from moft.method.channels import default_channels
    from moft.models.pipeline import vae_scale
    from moft.method.sampler import GuidanceConfig, sample
    from moft.method.targets import synthesize_target
    from moft.io.trajectory import parse_trajectory

    frames, side, steps, guided = FULL[model]
    pipe = build(model)
    scale = vae_scale(pipe)
    spec = cases(model)[case]
    traj = parse_trajectory({"version": 1, "frames": frames, "regions": [
        {"mask": {"box": [0.25, 0.25, 0.75, 0.75]}, "direction": "left", "speed": 0.05}]})
    target = g = None
    if spec == "control":
        from moft.front.control import control

        torch.manual_seed(0)
        reset_peak_memory()
        t0 = time.perf_counter()
        res = control(pipe, traj, prompt=PROMPT, channels=default_channels(model), seed=0, steps=steps)
        out = res.result  # its counts are the guided sampling's; the time is the whole run's
    else:
        latents = keep = None
        if spec == "shipped":  # the model's own settings (moft.json), planned and targeted before the clock starts
            from moft.front.control import make_target, plan_control

            plan = plan_control(pipe, traj, prompt=PROMPT, channels=default_channels(model), seed=0, steps=steps)
            target, source, _, keep = make_target(pipe, plan)  # the source video, the target, the keep levers
            g = plan.guidance if plan.guided else None  # cut-and-drag: no target, no gradients
            target = target if plan.guided else None
            latents = None if source is None else source.initial_latents
        elif spec is not None:
            ch = default_channels(model) if model in SHIPPED else None
            if ch is None:  # random full-size weights: any channels exercise the same work
                c = WIDTH[model]
                ch = MotionChannels(torch.arange(51), torch.arange(51, 102), {"horizontal": torch.ones(c), "vertical": torch.ones(c)},
                                    torch.randn(c, 2, generator=torch.Generator().manual_seed(0)), torch.ones(c))
            target = synthesize_target(traj, ch, latent_size=(side, side))
            g = GuidanceConfig(steps=guided, **spec)
        torch.manual_seed(0)
        reset_peak_memory()
        t0 = time.perf_counter()
        out = sample(pipe, PROMPT, steps=steps, seed=0, num_frames=frames, height=side * scale, width=side * scale,
                     latents=latents, target=target, guidance=g, keep=keep)  # CFG: the model's, else the official 7.5
    seconds = time.perf_counter() - t0
    peak, how = peak_memory()
    return {"model": model, "case": case, "seconds": seconds, "loop_seconds": out.seconds, "peak_bytes": peak,
            "peak_measure": how,
            "forwards": out.counts["forwards"], "backwards": out.counts["backwards"], "steps": steps,
            "frames": frames, "latent": side, "guided_steps": list(guided), "latent_channels": latent_channels(pipe)}


@torch.no_grad()
def capture_overhead(model: str, repeats: int) -> dict:
    """Median time of a plain forward vs the same forward under ``capture`` (alternating)."""
    from moft.models.adapters import call_denoiser
    from moft.method.capture import capture
    from moft.models.latents import encode_prompt, latent_channels
    from moft.models.loading import denoiser

    frames, side, _, _ = FULL[model]
    pipe = build(model)
    net = denoiser(pipe)
    z = torch.randn(2, frames, latent_channels(pipe), side, side, generator=torch.Generator().manual_seed(0))
    cond = {"encoder_hidden_states": encode_prompt(pipe, ["", "a red disk"])}
    plain, hooked = [], []
    call_denoiser(net, z, 500, cond)  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        call_denoiser(net, z, 500, cond)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with capture(net, detach=True):
            call_denoiser(net, z, 500, cond)
        hooked.append(time.perf_counter() - t0)
    p, h = statistics.median(plain), statistics.median(hooked)
    # noise: the spread of the plain timings (interquartile range over the median)
    q = statistics.quantiles(plain, n=4)
    return {"model": model, "plain_s": p, "capture_s": h, "overhead": h / p - 1, "repeats": repeats,
            "plain_iqr_fraction": (q[2] - q[0]) / p}


def main():
    from moft.io.jsonio import write_report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="moft-tiny,animatediff,zeroscope")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "CASE"), help=argparse.SUPPRESS)
    ap.add_argument("--overhead", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("MOFT_BENCH_THREADS", "2")))
    if args.one:
        print(json.dumps(one_case(*args.one)))
        return
    if args.overhead:
        print(json.dumps(capture_overhead(args.overhead, args.repeats)))
        return
    rows, overheads = [], []
    for model in args.models.split(","):
        for case in cases(model):
            proc = subprocess.run([sys.executable, __file__, "--one", model, case], capture_output=True, text=True,
                                  check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        proc = subprocess.run([sys.executable, __file__, "--overhead", model, "--repeats", str(args.repeats)],
                              capture_output=True, text=True, check=True)
        overheads.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(overheads[-1]), flush=True)
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["case"] == "unguided")
        r["time_vs_unguided"] = r["seconds"] / base["seconds"]
        r["rss_vs_unguided"] = r["peak_bytes"] / base["peak_bytes"]
        off = next((b for b in rows if b["model"] == r["model"] and b["case"] == "guided (official)"), None)
        if off is not None and r["case"] == "guided (moft)":
            r["time_vs_official"] = r["seconds"] / off["seconds"]
            r["rss_vs_official"] = r["peak_bytes"] / off["peak_bytes"]
    report = {"rows": rows, "capture_overhead": overheads, "device": "cuda" if torch.cuda.is_available() else "cpu",
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "defaults": {m: shipped_defaults(m) for m in args.models.split(",") if m in SHIPPED}}
    print(markdown(report))
    if args.out:
        write_report(args.out, report, markdown(report))


def markdown(report: dict) -> str:
    lines = [f"## Speed and memory ({report['device']}, {report['threads']} threads, torch {report['torch']})", "",
             "| model | case | time (s) | × unguided | × official | peak memory (GiB) | forwards | backwards |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} ({r['frames']}f, {r['latent']}² latents, {r['steps']} steps) | {r['case']} "
                     f"| {r['seconds']:.1f} | {r['time_vs_unguided']:.2f} | {r.get('time_vs_official', float('nan')):.2f} "
                     f"| {r['peak_bytes'] / 2**30:.2f} | {r['forwards']} | {r['backwards']} |")
    lines += ["", f"Peak memory: {report['rows'][0].get('peak_measure', 'ru_maxrss (whole process)')}, "
                  "taken over the sampling call only (model built and loaded before)."]
    floor = [r for r in report["rows"] if r["case"] == "guided (moft)"]
    for r in floor:
        lines += ["", f"Work floor of a guided {r['model']} run: {r['forwards']} denoiser forwards and {r['backwards']} "
                      f"backwards (unguided: {next(b['forwards'] for b in report['rows'] if b['model'] == r['model'] and b['case'] == 'unguided')} forwards)."]
    lines += ["", "| model | plain forward (s) | under capture (s) | overhead | noise (IQR of plain) |", "|---|---|---|---|---|"]
    for o in report["capture_overhead"]:
        noise = f"{100 * o['plain_iqr_fraction']:.1f}%" if "plain_iqr_fraction" in o else "–"
        lines.append(f"| {o['model']} | {o['plain_s']:.4f} | {o['capture_s']:.4f} | {100 * o['overhead']:+.1f}% | {noise} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""The ``moft`` command line.

Example:
    $ moft info
    $ moft extract --prompt "a red disk moving left" --out feats.safetensors --figure feats.png
    $ moft fit-channels --out channels.safetensors --method inversion
    $ moft control examples/object_left.json --out left.gif --prompt "a red disk" --save-source

Bad input prints one line ``error: ...`` and exits with code 2; outputs are written atomically.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Training-free motion interpretation and control in video diffusion models (MOFT).")


def _user_errors() -> tuple[type[BaseException], ...]:
    from .adapters import ArchitectureError
    from .capture import CaptureError
    from .channels import ChannelsError
    from .models import ModelError
    from .pipeline import FramesError
    from .targets import TargetError
    from .trajectory import TrajectoryError
    from .video import VideoError

    return (ArchitectureError, CaptureError, ChannelsError, FramesError, ModelError, TargetError, TrajectoryError,
            VideoError,
            ValueError, FileNotFoundError, IsADirectoryError, PermissionError)


@contextmanager
def _errors():
    """Turn user errors into one line on stderr and exit code 2."""
    try:
        yield
    except _user_errors() as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def _progress(label: str):
    """A rich progress bar on stderr, shown from the first update; yields ``update(done, total)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True))
    task = None

    def update(done: int, total: int):
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(label, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


def _load(model: str | None):
    import torch

    from .models import load_pipeline

    torch.set_grad_enabled(True)
    return load_pipeline(model)


def _channels(path: Optional[Path], model: str | None, required: bool):
    from .channels import MotionChannels
    from .models import default_channels

    if path is not None:
        return MotionChannels.load(path)
    ch = default_channels(model)
    if ch is None and required:
        raise ValueError("this model has no shipped motion channels; run `moft fit-channels` and pass --channels")
    return ch


def _check_out(path: Path, suffixes: tuple[str, ...]):
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: output must end in {' or '.join(suffixes)}")


@app.command()
def info(model: Optional[str] = typer.Option(None, help="moft-tiny (default), a pipeline folder or a hub id")):
    """Model class, adapter, capture sites and the feature shape at the default site."""
    with _errors():
        import torch

        from .adapters import architecture_of, call_denoiser, default_site
        from .capture import capture, capture_sites
        from .latents import latent_channels, probe_conditioning, vae_scale
        from .models import default_channels, denoiser
        from .pipeline import default_video_size, latent_frames

        pipe = _load(model)
        net = denoiser(pipe)
        arch = architecture_of(net)
        f, h, w = default_video_size(pipe)
        sites = capture_sites(net)
        s = vae_scale(pipe)
        z = torch.zeros(1, latent_frames(pipe, f), latent_channels(pipe), h // s, w // s)
        with torch.no_grad(), capture(net, stop=True) as cap:
            call_denoiser(net, z, 500, probe_conditioning(pipe, z))
        ch = default_channels(model)
        lines = [
            f"pipeline      {type(pipe).__name__}",
            f"denoiser      {type(net).__name__} ({sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params)",
            f"adapter       {arch.name}",
            f"video         {f} frames x {h}x{w} px, latents {z.shape[1]}x{latent_channels(pipe)}x{h // s}x{w // s}",
            f"default site  {default_site(net)} -> (B, F, C, H, W) = {tuple(cap.output.shape)}",
            f"blocks        {', '.join(sites['blocks'])}",
            f"temporal      {len(sites['temporal'])} modules, e.g. {', '.join(sites['temporal'][:3])}",
            f"channels      {'shipped: ' + str(ch.indices.tolist()) if ch is not None else 'none shipped'}",
        ]
        typer.echo("\n".join(lines))


@app.command()
def extract(
    out: Path = typer.Option(..., help="FEATURES.safetensors to write"),
    prompt: Optional[str] = typer.Option(None, help="generate this prompt and take its features"),
    video: Optional[Path] = typer.Option(None, help="GIF/MP4/PNG folder to invert instead of a prompt"),
    model: Optional[str] = typer.Option(None, help="moft-tiny (default), a pipeline folder or a hub id"),
    seed: int = typer.Option(0),
    timestep: int = typer.Option(200, help="timestep of the features (generation or inversion)"),
    channels: Optional[Path] = typer.Option(None, help="motion channel file (default: the model's shipped one)"),
    site: Optional[str] = typer.Option(None, help="module path to capture (default: up_blocks.1)"),
    steps: int = typer.Option(25, help="DDIM steps"),
    figure: Optional[Path] = typer.Option(None, help="also write a PNG: PCA of MOFT and a correspondence heatmap"),
):
    """Features and MOFT of a prompt's generated video or of a given video."""
    with _errors():
        from .extract import extract as run
        from .video import read_video

        _check_out(out, (".safetensors",))
        if figure is not None:
            _check_out(figure, (".png",))
        if (prompt is None) == (video is None):
            raise ValueError("give exactly one of --prompt or --video")
        frames = read_video(video) if video is not None else None
        ch = _channels(channels, model, required=False)
        pipe = _load(model)
        with _progress("extract") as update:
            ex = run(pipe, prompt=prompt, video=frames, timestep=timestep, seed=seed, channels=ch, site=site,
                     steps=steps, progress=update)
        ex.meta["model"] = model or "moft-tiny"
        if video is not None:
            ex.meta["video"] = str(video)
        ex.save(out)
        if figure is not None:
            from .figures import extraction_figure

            extraction_figure(ex, figure)
        typer.echo(f"wrote {out}: features {tuple(ex.features.shape)}, moft {tuple(ex.moft.shape)}")


@app.command("fit-channels")
def fit_channels(
    out: Path = typer.Option(..., help="CHANNELS.safetensors to write (+ .json metadata)"),
    model: Optional[str] = typer.Option(None, help="moft-tiny (default), a pipeline folder or a hub id"),
    fraction: float = typer.Option(0.04, help="share of channels kept per axis (paper: 4%)"),
    method: str = typer.Option("inversion", help="inversion (paper) or noise (one noised forward)"),
    rank: str = typer.Option("pca", help="pca (paper: |PC1 loading|) or separation (|d'| between opposite pans)"),
    timestep: int = typer.Option(200, help="timestep of the features"),
    scenes: int = typer.Option(4, help="still scenes per axis (two pans each)"),
    images: Optional[Path] = typer.Option(None, help="folder of still pictures to pan instead of synthetic scenes"),
    site: Optional[str] = typer.Option(None, help="module path to capture (default: up_blocks.1)"),
    seed: int = typer.Option(0),
):
    """Fit horizontal and vertical motion channels on synthetic pans (PCA, as the paper, or d')."""
    with _errors():
        from .channels import fit_channels as run
        from .video import read_video

        _check_out(out, (".safetensors",))
        pics = None
        if images is not None:
            files = sorted(p for p in Path(images).glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if not files:
                raise ValueError(f"{images}: no .png/.jpg pictures")
            pics = [read_video(p)[0] for p in files]
        pipe = _load(model)
        with _progress("fit-channels") as update:
            ch = run(pipe, fraction=fraction, method=method, rank=rank, timestep=timestep, scenes=scenes, site=site,
                     seed=seed, images=pics, model_name=model or "moft-tiny", progress=update)
        ch.save(out)
        ev = ch.meta["explained_variance_ratio"]
        typer.echo(f"wrote {out}: horizontal {ch.horizontal.tolist()}, vertical {ch.vertical.tolist()} "
                   f"(PC1 explains {ev['horizontal'][0]:.2f} / {ev['vertical'][0]:.2f})")


@app.command()
def control(
    trajectory: Path = typer.Argument(..., help="trajectory JSON (see README)"),
    out: Path = typer.Option(..., help="OUT.gif or OUT.mp4; OUT.json is written beside it"),
    model: Optional[str] = typer.Option(None, help="moft-tiny (default), a pipeline folder or a hub id"),
    prompt: Optional[str] = typer.Option(None, help="text prompt (default: the model's)"),
    seed: int = typer.Option(0),
    steps: int = typer.Option(25, help="DDIM steps"),
    guidance_scale: Optional[float] = typer.Option(None, help="CFG scale (default: the model's, else 7.5)"),
    reference: Optional[Path] = typer.Option(None, help="reference video whose motion to copy"),
    target: Optional[Path] = typer.Option(None, help="a saved target file (from --save-target)"),
    save_target: Optional[Path] = typer.Option(None, help="write the target used to this .safetensors"),
    init_latents: Optional[Path] = typer.Option(None, help="initial noise (.safetensors written by an earlier run)"),
    save_source: bool = typer.Option(False, help="also write OUT.source.EXT: the unguided video from the same noise"),
    save_proxy: bool = typer.Option(False, help="also write OUT.proxy.EXT: the drag proxy (drag targets only)"),
    channels: Optional[Path] = typer.Option(None, help="motion channel file (default: the model's shipped one)"),
    guided_steps: Optional[str] = typer.Option(None, help="guided step indices START:END, end exclusive [the model's moft.json, else 3:12]"),
    iterations: Optional[int] = typer.Option(None, help="gradient iterations per guided step [the model's moft.json, else 2]"),
    step_size: Optional[float] = typer.Option(None, help="latent update step [the model's moft.json, else 0.5]"),
    weight: Optional[float] = typer.Option(None, help="loss weight [6 for one region, 8 for several]"),
    loss: Optional[str] = typer.Option(None, help="region_mse (official) or per_position (paper Eq. 3) [the model's moft.json, else region_mse]"),
    shared_kv: Optional[bool] = typer.Option(None, "--shared-kv/--no-shared-kv", help="share spatial K/V from the unguided branch [the model's moft.json, else on]"),
    grad_mask: Optional[str] = typer.Option(None, help="all, first:N or off [all]"),
    gain: float = typer.Option(1.0, help="strength of synthesized target curves"),
    target_kind: Optional[str] = typer.Option(None, help="curves (paper: region-mean curves from the channels) or "
                                              "drag (the unguided video's regions dragged along the trajectory, "
                                              "inverted) [the model's moft.json, else curves]"),
):
    """Generate a video whose regions move as the trajectory says."""
    with _errors():
        from safetensors.torch import load_file, save

        from .control import control as run
        from .control import default_guidance
        from .latents import vae_scale
        from .models import model_defaults
        from .targets import TARGET_KINDS, Target
        from .trajectory import load_trajectory
        from .video import atomic_write_bytes, atomic_write_text, read_video, write_video

        _check_out(out, (".gif", ".mp4"))
        kind = target_kind or model_defaults(model).get("target", "curves")
        if kind not in TARGET_KINDS:
            raise ValueError(f"--target-kind: expected one of {', '.join(TARGET_KINDS)}, got {kind!r}")
        if save_proxy and (kind != "drag" or target is not None or reference is not None):
            raise ValueError("--save-proxy: only a drag target made from the trajectory has a proxy video")
        given = {"iterations": iterations, "step_size": step_size, "weight": weight, "loss": loss,
                 "shared_kv": shared_kv, "grad_mask": grad_mask}
        if guided_steps is not None:
            try:
                given["steps"] = tuple(int(v) for v in guided_steps.split(":"))
                assert len(given["steps"]) == 2
            except (ValueError, AssertionError):
                raise ValueError(f"--guided-steps: expected START:END, got {guided_steps!r}") from None
        g = default_guidance(model, **{k: v for k, v in given.items() if v is not None})
        defaults = model_defaults(model)
        pipe = _load(model)
        from .channels import default_video_size

        f, h, w = default_video_size(pipe)
        traj = load_trajectory(trajectory, default_frames=f)
        if traj.frames != f:
            raise ValueError(f"{trajectory}: frames: {traj.frames}, but this model makes {f}-frame videos")
        traj.masks(h // vae_scale(pipe), w // vae_scale(pipe))  # every region must cover the latent grid
        tgt = Target.load(target) if target is not None else None
        ref = read_video(reference) if reference is not None else None
        ch = _channels(channels, model, required=tgt is None and ref is None)
        init = None
        if init_latents is not None:
            try:
                init = load_file(str(init_latents))["latents"]
            except Exception:
                raise ValueError(f"{init_latents}: not a moft latents file") from None
        prompt = prompt if prompt is not None else defaults.get("prompt", "")
        cfg = guidance_scale if guidance_scale is not None else defaults.get("guidance_scale", 7.5)
        with _progress("control") as update:
            res = run(pipe, traj, prompt=prompt, channels=ch, reference=ref, target=tgt, seed=seed, steps=steps,
                      guidance_scale=cfg, guidance=g, init_latents=init, keep_source=save_source, gain=gain,
                      target_kind=kind, progress=update)
        stem = out.with_suffix("")
        latents_path = Path(f"{stem}.latents.safetensors")
        report = dict(res.report, model=model or "moft-tiny", trajectory=str(trajectory),
                      reference=str(reference) if reference else None, target_file=str(target) if target else None,
                      init_latents=str(init_latents) if init_latents else None, latents_file=str(latents_path),
                      channels_file=str(channels) if channels else "shipped")
        write_video(out, res.frames)
        if save_source:
            write_video(Path(f"{stem}.source{out.suffix}"), res.source_frames)
        if save_proxy:
            write_video(Path(f"{stem}.proxy{out.suffix}"), res.proxy_frames)
        atomic_write_bytes(latents_path, save({"latents": res.result.initial_latents.contiguous().float()}))
        if save_target is not None:
            res.target.save(save_target)
        atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
        losses = res.result.losses
        what = f"loss {losses[0]['loss']:.4g} -> {losses[-1]['loss']:.4g}" if losses else "unguided"
        typer.echo(f"wrote {out} ({res.result.seconds:.1f} s; {what})")


@app.command()
def evaluate(
    suite: Path = typer.Argument(..., help="suite JSON (see benchmarks/)"),
    out: Path = typer.Option(..., help="REPORT.json; REPORT.md and REPORT.png are written beside it"),
    model: Optional[str] = typer.Option(None, help="moft-tiny (default), a pipeline folder or a hub id"),
    channels: Optional[Path] = typer.Option(None, help="motion channel file (default: the model's shipped one)"),
    work_dir: Optional[Path] = typer.Option(None, help="per-item results (default: REPORT.parts/); reruns resume"),
    shard: Optional[str] = typer.Option(None, help="K/N: run only every N-th item from the K-th (without accelerate)"),
):
    """Run a suite of controlled generations, score them, write a report (shards under accelerate launch)."""
    with _errors():
        import os

        import torch
        from accelerate import PartialState

        from .evaluate import collect, load_suite, markdown_table, run_identity, run_suite, summarise
        from .figures import report_figure
        from .models import model_defaults
        from .video import atomic_write_text

        _check_out(out, (".json",))
        spec = load_suite(suite)
        spec["guidance"] = dict(model_defaults(model).get("guidance", {}), **spec.get("guidance", {}))
        spec.setdefault("target", model_defaults(model).get("target", "curves"))
        ch = _channels(channels, model, required=True)
        if shard is not None:
            try:
                index, count = (int(v) for v in shard.split("/"))
                assert 0 <= index < count
            except (ValueError, AssertionError):
                raise ValueError(f"--shard: expected K/N with 0 <= K < N, got {shard!r}") from None
            state, main = None, True
        else:
            # cpu=True lets torchrun's processes on a CPU-only machine form a gloo group (accelerate
            # only does so when told it is on CPU); on GPUs accelerate launch picks NCCL as usual
            state = PartialState(cpu=not torch.cuda.is_available())
            index, count, main = state.process_index, state.num_processes, state.is_main_process
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
        pipe = _load(model)
        work = work_dir or out.with_suffix(".parts")
        with _progress(f"evaluate [{index}/{count}]") as update:
            run_suite(pipe, spec, work, ch, process_index=index, num_processes=count, progress=update)
        if state is not None:
            state.wait_for_everyone()
        if main:
            rows = collect(spec, work, run_identity(pipe, ch))
            table = summarise(rows)
            report = {"suite": spec, "model": model or "moft-tiny", "channels_digest": ch.digest(),
                      "table": table, "rows": rows}
            atomic_write_text(out, json.dumps(report, indent=2) + "\n")
            atomic_write_text(out.with_suffix(".md"), f"## {spec['name']}\n\n" + markdown_table(table))
            report_figure(table, out.with_suffix(".png"), title=spec["name"])
            typer.echo(markdown_table(table))


def _quiet():
    """Silence library chatter (loading bars, optional-dependency warnings) on the user's terminal."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def main():
    """Console-script entry point."""
    _quiet()
    app(prog_name="moft")


if __name__ == "__main__":
    sys.exit(main())

"""Where models run: --device/--dtype/--offload on every command, the dtype rule (float32 latents and loss
around a lower-precision denoiser), and the memory levers of guided sampling, all on the CPU.

No accelerator here: device names are checked against a faked CUDA (``torch.cuda.is_available`` and
``device_count`` patched), and the CLI's plumbing by recording what ``load_pipeline`` receives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import moft.front.cli as cli
from moft.front.cli import app
from moft.front.control import control
from moft.io.trajectory import load_trajectory
from moft.method.channels import MotionChannels
from moft.method.sampler import GuidanceConfig, GuidanceState, guidance_step, sample
from moft.method.targets import Target
from moft.models.adapters import default_site
from moft.models.device import DeviceError, resolve_device, resolve_dtype, resolve_offload
from moft.models.latents import initial_noise
from moft.models.loading import load_pipeline, place, placement

from conftest import FRAMES, SIZE, text_cond, tiny_animatediff

pytestmark = pytest.mark.usefixtures("single_thread")
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
TRAJ = ROOT / "examples" / "object_left.json"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def fake_cuda(monkeypatch, count: int = 2):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# --- names -------------------------------------------------------------------------------------------

def test_device_names_resolve_against_what_the_machine_has(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")           # no accelerator: the CPU
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="no MPS"):
        resolve_device("mps")
    fake_cuda(monkeypatch, count=2)
    assert resolve_device("auto") == torch.device("cuda")          # the accelerator when there is one
    assert resolve_device("CUDA:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    for bad in ("gpu", "cuda:x", ""):
        if bad:
            with pytest.raises(DeviceError, match="expected auto, cpu"):
                resolve_device(bad)
    assert resolve_dtype("bfloat16") is torch.bfloat16 and resolve_dtype(torch.float16) is torch.float16
    with pytest.raises(DeviceError):
        resolve_dtype("float64")
    with pytest.raises(DeviceError):
        resolve_offload("disk")


# --- the CLI -----------------------------------------------------------------------------------------

def commands(model_dir, tmp_path) -> dict:
    """Each command with the least it needs to get as far as loading the model."""
    return {
        "info": ["info", "--model", model_dir],
        "extract": ["extract", "--model", model_dir, "--prompt", "a red disk", "--out", tmp_path / "f.safetensors"],
        "fit-channels": ["fit-channels", "--model", model_dir, "--out", tmp_path / "c.safetensors"],
        "control": ["control", TRAJ, "--model", model_dir, "--out", tmp_path / "o.gif"],
        "evaluate": ["evaluate", ROOT / "benchmarks" / "smoke.json", "--model", model_dir, "--out",
                     tmp_path / "r.json", "--shard", "0/1"],
        "locate": ["locate", "--model", model_dir, "--out", tmp_path / "l.json"],
    }


def test_every_command_refuses_a_missing_device_in_one_line_before_loading(model_dir, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli, "load_pipeline", never)
    for name, args in commands(model_dir, tmp_path).items():
        r = run(*args, "--device", "cuda")
        assert r.exit_code == 2, (name, r.output)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: --device cuda: this machine has no CUDA"), (name, r.stderr)
    assert not any(tmp_path.iterdir())                              # nothing written


def test_every_command_hands_device_dtype_and_offload_to_the_loader(model_dir, tmp_path, monkeypatch):
    """With a faked two-GPU machine: `auto` is the accelerator, `cuda:1` and the dtype reach load_pipeline."""
    from moft.models.pipeline import ModelError

    fake_cuda(monkeypatch)
    seen = []

    def record(model, **where):
        seen.append(where)
        raise ModelError("stop here")

    monkeypatch.setattr(cli, "load_pipeline", record)
    for name, args in commands(model_dir, tmp_path).items():
        r = run(*args)
        assert r.exit_code == 2 and "stop here" in r.stderr, (name, r.output)
        assert seen.pop() == {"device": torch.device("cuda"), "dtype": torch.float32, "offload": "none"}, name
        r = run(*args, "--device", "cuda:1", "--dtype", "bfloat16", "--offload", "model")
        assert r.exit_code == 2 and "stop here" in r.stderr, (name, r.output)
        assert seen.pop() == {"device": torch.device("cuda", 1), "dtype": torch.bfloat16, "offload": "model"}, name


def test_bfloat16_runs_end_to_end_on_the_cpu_and_stays_close_to_float32(model_dir, tmp_path):
    """The dtype rule: a bfloat16 denoiser and text encoder, float32 latents, loss, Adam state and VAE.

    Tolerances (pixels in [0, 1]): bfloat16 rounds each operation to 2**-9 relative, so the unguided video
    moves by ~1e-3 on average (measured 0.0009 on moft-tiny, 0.002 on moft-tiny-wan at 10 steps); guidance
    amplifies it where Adam's first step (lr * sign of the gradient) flips the sign of near-zero gradients
    (measured 0.011 / 0.002 mean, up to 0.27 in single pixels), so the bars are 0.01 and 0.05, and the
    loss of each guided iteration within 10%.
    """
    traj = load_trajectory(TRAJ, default_frames=FRAMES)
    channels = MotionChannels.load(Path(model_dir) / "motion_channels.safetensors")
    g = GuidanceConfig(steps=(1, 3), iterations=2, optimizer="adam", step_size=0.15)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        pipe = load_pipeline(model_dir, dtype=dtype)
        assert pipe.vae.dtype == torch.float32 and pipe.unet.dtype == getattr(torch, dtype)
        guided = control(pipe, traj, prompt="a red disk", seed=0, steps=3, channels=channels, guidance=g,
                         keep_source=True)
        assert guided.result.latents.dtype == torch.float32 and guided.result.initial_latents.dtype == torch.float32
        assert (guided.report["device"], guided.report["dtype"]) == ("cpu", dtype)
        runs[dtype] = guided
    a, b = runs["float32"], runs["bfloat16"]
    assert torch.equal(a.result.initial_latents, b.result.initial_latents)   # one noise per seed, any dtype
    assert 0 < np.abs(b.source_frames - a.source_frames).mean() < 0.01       # unguided (it did run in bf16)
    assert np.abs(b.frames - a.frames).mean() < 0.05                           # guided
    np.testing.assert_allclose([x["loss"] for x in b.result.losses], [x["loss"] for x in a.result.losses], rtol=0.1)


def test_the_command_line_runs_in_bfloat16_and_reports_it(model_dir, tmp_path):
    out = tmp_path / "o.gif"
    r = run("control", TRAJ, "--model", model_dir, "--out", out, "--steps", 2, "--guided-steps", "1:2",
            "--iterations", 1, "--device", "cpu", "--dtype", "bfloat16")
    assert r.exit_code == 0, r.output
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert (report["device"], report["dtype"], report["offload"]) == ("cpu", "bfloat16", "none")
    assert load_file(str(out.with_suffix(".latents.safetensors")))["latents"].dtype == torch.float32


# --- memory levers -----------------------------------------------------------------------------------

def _target(pipe, z):
    """A random per-position target of the right shape on a centre box (the cost is that of any target)."""
    h, w = z.shape[-2:]
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    maps = torch.randn(1, z.shape[1], 64, h, w, generator=torch.Generator().manual_seed(1))
    return Target(maps[:, :, :, mask[0]].mean(-1), mask, None, True, maps)


def test_checkpointing_recomputes_blocks_and_leaves_the_latent_gradient_unchanged(animatediff):
    """The lever is real (the checkpointed resnet runs again in the backward pass) and exact."""
    net = animatediff.unet
    z = initial_noise(animatediff, num_frames=FRAMES, height=SIZE, width=SIZE, seed=0)
    target = _target(animatediff, z)
    calls = []
    # a pre-hook: the recomputation stops early (torch's non-reentrant checkpoint), before forward hooks run
    handle = net.down_blocks[0].resnets[0].register_forward_pre_hook(lambda *a: calls.append(1))
    moved = {}
    try:
        for on in (False, True):
            if on:
                net.enable_gradient_checkpointing()
            calls.clear()
            state = GuidanceState(target, GuidanceConfig(iterations=1, step_size=1.0, loss="per_position"),
                                  text_cond(animatediff), None, default_site(net), 1.0)
            moved[on] = guidance_step(net, z.clone(), torch.tensor(500), 0, state) - z
            assert len(calls) == (2 if on else 1)
    finally:
        handle.remove()
        net.disable_gradient_checkpointing()
    torch.testing.assert_close(moved[True], moved[False], atol=1e-6, rtol=0)   # sgd: the gradient itself


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_autocast_runs_the_loss_forward_in_low_precision_with_float32_latents(animatediff, kind):
    net = animatediff.unet
    z = initial_noise(animatediff, num_frames=FRAMES, height=SIZE, width=SIZE, seed=0)
    target = _target(animatediff, z)
    seen = []
    handle = net.down_blocks[0].resnets[0].conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        moved = {}
        for k in (None, kind):
            state = GuidanceState(target, GuidanceConfig(iterations=1, step_size=1.0, loss="per_position", autocast=k),
                                  text_cond(animatediff), None, default_site(net), 1.0)
            out = guidance_step(net, z.clone(), torch.tensor(500), 0, state)
            assert out.dtype == torch.float32
            moved[k] = out - z
    finally:
        handle.remove()
    assert seen == [torch.float32, getattr(torch, kind)]
    cos = torch.nn.functional.cosine_similarity(moved[None].flatten(), moved[kind].flatten(), dim=0)
    assert cos > 0.95                                               # the same direction of motion


@pytest.mark.parametrize("offload", ["model", "group"])
def test_guidance_under_the_pipelines_offload_hooks_equals_the_plain_path(offload):
    """On the CPU the hooks move nothing (CPU to CPU), so this checks they let guidance run and change
    nothing; moving to an accelerator and back needs one (``scripts/real_size.py`` on a GPU)."""
    results = {}
    for how in ("none", offload):
        pipe = place(tiny_animatediff(), "cpu", offload=how)
        assert placement(pipe)["offload"] == how
        z = initial_noise(pipe, num_frames=FRAMES, height=SIZE, width=SIZE, seed=0)
        g = GuidanceConfig(steps=(0, 2), iterations=2, loss="per_position")
        results[how] = sample(pipe, "a red disk", latents=z, steps=3, target=_target(pipe, z), guidance=g,
                              num_frames=FRAMES, height=SIZE, width=SIZE)
    torch.testing.assert_close(results[offload].latents, results["none"].latents, atol=1e-6, rtol=0)
    assert [x["loss"] for x in results[offload].losses] == pytest.approx([x["loss"] for x in results["none"].losses])


def test_control_takes_the_levers_from_the_command_line(model_dir, tmp_path):
    out = tmp_path / "o.gif"
    r = run("control", TRAJ, "--model", model_dir, "--out", out, "--steps", 3, "--guided-steps", "1:2",
            "--checkpointing", "--autocast", "bfloat16", "--device", "cpu")
    assert r.exit_code == 0, r.output
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["guidance"]["checkpointing"] is True and report["guidance"]["autocast"] == "bfloat16"
    r = run("control", TRAJ, "--model", model_dir, "--out", out, "--autocast", "int8")
    assert r.exit_code == 2 and r.stderr.startswith("error: --autocast: must be one of"), r.output

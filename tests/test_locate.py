"""``moft.front.locate``: a planted motion code is found where it was planted, content removal beats raw
features under a static content bias, and the CLI writes its report and model defaults."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from moft.front.locate import LocateError, locate, plan_locate, probe_clips, write_defaults
from moft.io.synthetic import DIRECTIONS

pytestmark = pytest.mark.usefixtures("single_thread")

SEED, PER_DIRECTION = 7, 3
PLANTED = "up_blocks.2"  # the last site to fire: nothing downstream of it is captured


@contextmanager
def planted(pipe, site: str, *, motion: float, static: float = 0.0):
    """Add a known motion code (and optionally a large per-clip static pattern) to ``site``'s output.

    The hooks know each forward's clip the way an oracle would: the noised input is matched to the
    clean latents of the clips ``locate`` makes (same seed), by the residual of the forward noising
    (reliable up to t ~ 200 with the random VAE's small latents, so the tests stay below it).
    The motion code is ``motion x (frame offset from the middle) x (dx P_x + dy P_y)`` for fixed
    random channel patterns ``P``; the static pattern is ``static x b_clip``, the same on every frame.
    """
    from einops import rearrange

    from moft.models.adapters import architecture_of, from_model_layout
    from moft.models.latents import encode_video

    net = pipe.unet
    arch = architecture_of(net)
    clips = probe_clips(num_frames=8, height=32, width=32, per_direction=PER_DIRECTION, seed=SEED)
    z0 = torch.cat([encode_video(pipe, c.frames) for c in clips])  # (N, F, C, h, w)
    dirs = torch.tensor([DIRECTIONS[list(DIRECTIONS)[c.direction]] for c in clips], dtype=torch.float32)  # (N, 2)
    channels = net.get_submodule(site).resnets[-1].out_channels
    g = torch.Generator().manual_seed(0)
    patterns = torch.randn(2, channels, generator=g)  # (2, C)
    biases = torch.randn(len(clips), channels, generator=g)  # (N, C)
    state = {}

    def pre(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]  # moft calls denoisers as their pipelines do (keywords)
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        x = from_model_layout(arch, sample)  # (1, F, C, h, w)
        a = pipe.scheduler.alphas_cumprod[int(torch.as_tensor(t).flatten()[0])]
        state["clip"] = int(((x - a.sqrt() * z0) ** 2).flatten(1).sum(1).argmin())

    def hook(module, args, output):
        n = state["clip"]
        f = 8
        offset = (torch.arange(f, dtype=torch.float32) - (f - 1) / 2) / (f - 1)  # (F,)
        code = offset[:, None] * (dirs[n] @ patterns)[None, :]  # (F, C)
        add = motion * code + static * biases[n][None, :]  # (F, C)
        out = rearrange(output, "(b f) c h w -> b f c h w", f=f) + add[None, :, :, None, None]
        return rearrange(out, "b f c h w -> (b f) c h w")

    handles = [net.register_forward_pre_hook(pre, with_kwargs=True),
               net.get_submodule(site).register_forward_hook(hook)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@pytest.mark.slow
def test_planted_motion_site_ranks_first(animatediff):
    with planted(animatediff, PLANTED, motion=4.0):
        rep = locate(animatediff, timesteps=(50, 200), clips_per_direction=PER_DIRECTION, seed=SEED,
                     fractions=(0.04,))
    assert not animatediff.unet._forward_hooks and not animatediff.unet._forward_pre_hooks
    i = rep.sites.index(PLANTED)
    assert rep.sites[0] == "down_blocks.0.motion_modules.0" and rep.sites[-1] == PLANTED  # forward order
    assert rep.recommendation["site"] == PLANTED
    assert all(s == PLANTED for s, _, _ in rep.recommendation["near_best"])  # no other site comes close
    assert rep.accuracy["moft"][i].min() >= 0.9
    others = np.delete(rep.accuracy["moft"], i, axis=0)
    assert others.max() < rep.accuracy["moft"][i].min() - 0.2, others.max()
    # the code lives in two channel directions: the top 4% by the pan ranking carries it
    assert rep.accuracy["top"][0.04][i].min() >= 0.5


@pytest.mark.slow
def test_content_removal_beats_raw_under_a_static_bias(animatediff):
    with planted(animatediff, PLANTED, motion=4.0, static=40.0):
        rep = locate(animatediff, sites=[PLANTED, "mid_block"], timesteps=(200,), clips_per_direction=PER_DIRECTION,
                     seed=SEED, fractions=())
    i = rep.sites.index(PLANTED)
    moft_acc, raw_acc = rep.accuracy["moft"][i, 0], rep.accuracy["raw"][i, 0]
    assert moft_acc >= 0.9
    assert raw_acc <= moft_acc - 0.3, (raw_acc, moft_acc)
    assert rep.recommendation["site"] == PLANTED and rep.recommendation["fraction"] is None


def test_probe_clips_are_labelled_and_held_out():
    clips = probe_clips(num_frames=8, height=32, width=24, per_direction=1, seed=3)
    assert [c.kind for c in clips] == ["pan"] * 8 + ["object"] * 8
    assert [c.direction for c in clips] == list(range(8)) * 2
    assert clips[0].frames.shape == (8, 32, 24, 3) and clips[0].region.shape == (32, 24)
    assert clips[0].region.min() == 1.0  # a pan moves everywhere
    obj = clips[8]
    assert 0 < obj.region.mean() < 0.5  # an object's swept path only
    # the content really moves in the labelled direction: frame 7 is frame 0 shifted right (pan 'right')
    f0, f7 = clips[0].frames[0].astype(float), clips[0].frames[7].astype(float)
    shift = np.argmin([np.abs(f7[:, s:] - f0[:, :24 - s]).mean() for s in range(8)])
    assert shift > 0
    # the known correspondence goes the labelled way: a pan 'right' and an object 'up'
    assert clips[0].end[0] - clips[0].start[0] > 0.1 and abs(clips[0].end[1] - clips[0].start[1]) < 1e-9
    up = clips[8 + list(DIRECTIONS).index("up")]
    assert up.start[1] - up.end[1] > 0.1 and abs(up.end[0] - up.start[0]) < 1e-9
    with pytest.raises(LocateError):
        probe_clips(num_frames=8, height=32, width=32, per_direction=1, kinds=("spin",))


def test_correspondence_follows_moving_content_and_needs_content_removal():
    from moft.method.features import remove_content_correlation
    from moft.front.locate import correspondence_error

    g = torch.Generator().manual_seed(1)
    base = torch.randn(8, 16, 16, generator=g)  # (C, H, W) a texture moving down-right one cell a frame
    x = torch.stack([base.roll((t, t), dims=(-2, -1)) for t in range(6)])[None]  # (1, F, C, H, W)
    x = x + 30 * torch.randn(1, 1, 8, 16, 16, generator=g)  # a static content pattern that dominates
    start, end = np.array([4.5, 4.5]) / 16, np.array([9.5, 9.5]) / 16
    assert correspondence_error(remove_content_correlation(x)[0], start, end) == 0.0
    # without content removal the static pattern wins: the point matches itself, where nothing moved to
    assert correspondence_error(x[0], start, end) == pytest.approx(np.hypot(5, 5) / 16)


def test_bad_settings_are_one_line_errors(animatediff):
    from moft.method.capture import CaptureError

    with pytest.raises(LocateError, match="timesteps"):
        locate(animatediff, timesteps=(1000,))
    with pytest.raises(LocateError, match="budget"):
        locate(animatediff, timesteps=(100, 200), max_forwards=40)
    with pytest.raises(LocateError, match="at least 2"):
        locate(animatediff, clips_per_direction=1)
    with pytest.raises(CaptureError, match="no module"):
        locate(animatediff, sites=["up_blocks.9"])


def test_cli_writes_report_figure_and_defaults(model_dir, tmp_path):
    from typer.testing import CliRunner

    from moft.front.cli import app
    from moft.models.loading import load_pipeline
    from moft.models.pipeline import pipeline_site as default_site

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    out = tmp_path / "loc.json"
    r = CliRunner().invoke(app, ["locate", "--model", str(folder), "--out", str(out), "--sites",
                                 "down_blocks.0,up_blocks.1", "--timesteps", "300", "--clips", "2",
                                 "--fractions", "0.1", "--budget", "40", "--write-defaults", str(folder)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["forwards"] == 32 and rep["clips"]["total"] == 32  # 8 directions x 2 kinds x 2 clips x 1 timestep
    assert rep["sites"] == ["down_blocks.0", "up_blocks.1"] and len(rep["accuracy"]["moft"]) == 2
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "Recommended" in out.with_suffix(".md").read_text()
    defaults = json.loads((folder / "moft.json").read_text())
    assert defaults["prompt"] == "a red disk"  # kept
    assert defaults["site"] == rep["recommendation"]["site"] == defaults["locate"]["site"]
    if defaults["site"] != "up_blocks.1":  # the folder's channels were fitted at up_blocks.1
        assert "refit" in r.output
    assert default_site(load_pipeline(folder)) == defaults["site"]


def test_cli_bad_input_writes_nothing(model_dir, tmp_path):
    from typer.testing import CliRunner

    from moft.front.cli import app

    out = tmp_path / "loc.json"
    runner = CliRunner()
    for args, text in [(["--timesteps", "a,b"], "--timesteps"), (["--budget", "10"], "budget"),
                       (["--write-defaults", str(tmp_path)], "model_index.json"), (["--sites", "nope"], "nope")]:
        r = runner.invoke(app, ["locate", "--model", str(model_dir), "--out", str(out), *args])
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], r.stderr
        assert not out.exists()


def test_defaults_are_read_by_guidance_and_write_defaults_checks_folder(model_dir, tmp_path):
    from moft.front.control import default_guidance
    from moft.front.locate import LocateReport

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    acc = np.zeros((1, 1))
    rep = LocateReport(["mid_block"], [200], [], {"moft": acc, "raw": acc, "top": {}, "moft_by_kind": {}},
                       {"site": "mid_block", "timestep": 200, "fraction": None, "moft_accuracy": 0.5,
                        "raw_accuracy": 0.2, "top_accuracy": None, "standard_error": 0.05, "near_best": []})
    notes = write_defaults(folder, rep)
    assert len(notes) == 1 and "fitted at up_blocks.1" in notes[0]
    assert default_guidance(folder).site == "mid_block"
    assert default_guidance(folder, site="up_blocks.1").site == "up_blocks.1"  # an explicit setting wins
    with pytest.raises(LocateError, match="model_index"):
        write_defaults(tmp_path, rep)
    (folder / "moft.json").write_text("[1]")
    with pytest.raises(LocateError, match="JSON object"):
        write_defaults(folder, rep)


@pytest.mark.slow
def test_same_code_path_on_modelscope(modelscope):
    """Only the site enumeration differs between architectures: UNet3D blocks and temp_attentions."""
    rep = locate(modelscope, timesteps=(200,), clips_per_direction=2, fractions=(0.1,))
    assert "up_blocks.1" in rep.sites and any("temp_attentions" in s for s in rep.sites)
    assert rep.accuracy["moft"].shape == (len(rep.sites), 1)
    assert rep.recommendation["site"] in rep.sites and rep.meta["architecture"] == "modelscope"
    assert not modelscope.unet._forward_hooks and not modelscope.unet._forward_pre_hooks


@pytest.mark.slow
def test_same_code_path_on_a_wan_dit(wan, tmp_path):
    """A DiT's sites are its transformer blocks (frame-major tokens turned into feature maps); the
    clips take the size of the model folder's moft.json (moft-tiny-wan's 9 frames of 32x32)."""
    import json

    from moft.models.loading import load_pipeline

    folder = tmp_path / "tiny-wan"
    wan.save_pretrained(folder)
    (folder / "moft.json").write_text(json.dumps({"frames": 9, "height": 32, "width": 32}))
    pipe = load_pipeline(folder)
    rep = locate(pipe, timesteps=(200,), clips_per_direction=2, fractions=(0.1,))
    assert rep.sites == [f"blocks.{i}" for i in range(6)]
    assert rep.accuracy["moft"].shape == (6, 1) and rep.meta["architecture"] == "wan"
    assert rep.recommendation["site"] in rep.sites
    assert not pipe.transformer._forward_hooks and not pipe.transformer._forward_pre_hooks


# --------------------------------------------------------------------------- the command line's bad inputs (issue 24)


def _snapshot(folder) -> dict:
    """Every file under ``folder`` with its bytes: the run must leave it byte-identical."""
    from pathlib import Path

    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _locate_cli(monkeypatch, *args):
    """``moft locate ARGS`` with a model load that fails the test: every refusal below comes before it."""
    from typer.testing import CliRunner

    import moft.front.cli as cli

    monkeypatch.setattr(cli, "load_pipeline", lambda *a, **k: pytest.fail("the model loaded before the check"))
    return CliRunner().invoke(cli.app, ["locate", *[str(a) for a in args]])


def _one_line_exit_2(result, text: str):
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert text in lines[0] and "Traceback" not in result.output, lines[0]


@pytest.mark.parametrize("out, defaults, text", [
    ("model_index.json", False, "model folder"),            # would destroy the model
    ("unet/config.json", False, "model folder"),            # any file of it
    ("moft.json", True, "model folder"),                    # would replace the defaults it writes
    ("motion_channels.json", False, "model folder"),        # its .md / .png siblings are new: only the .json...
])
def test_locate_refuses_an_output_over_a_file_of_its_model_folder(model_dir, tmp_path, monkeypatch, out, defaults,
                                                                   text):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    (folder / "motion_channels.json").write_text("{}")  # ...which exists here
    before = _snapshot(folder)
    extra = ["--write-defaults", folder] if defaults else []
    _one_line_exit_2(_locate_cli(monkeypatch, "--model", folder, "--out", folder / out, *extra), text)
    assert _snapshot(folder) == before


def test_locate_refuses_the_defaults_file_it_would_write_even_before_it_exists(model_dir, tmp_path, monkeypatch):
    folder, other = tmp_path / "model", tmp_path / "other"
    shutil.copytree(model_dir, folder)
    shutil.copytree(model_dir, other)
    (other / "moft.json").unlink()
    before = _snapshot(other)
    r = _locate_cli(monkeypatch, "--model", folder, "--out", other / "moft.json", "--write-defaults", other)
    _one_line_exit_2(r, "--write-defaults folder")
    assert _snapshot(other) == before


def test_an_output_beside_the_model_files_with_a_new_name_is_allowed(model_dir, tmp_path):
    from moft.front.cli import _not_into_folders

    _not_into_folders({"--out": model_dir / "locate.json"}, {"model folder": model_dir}, new_files=("moft.json",))
    _not_into_folders({"--out": tmp_path / "moft.json"}, {"model folder": model_dir}, new_files=("moft.json",))


@pytest.mark.parametrize("args, text", [
    (["--clips", "1"], "at least 2"),
    (["--timesteps", "100,100"], "timesteps must be distinct integers in [0, 1000)"),
    (["--timesteps", "5000"], "timesteps must be distinct integers in [0, 1000), got [5000]"),
    (["--timesteps", "a,b"], "--timesteps: expected a comma-separated list"),
    (["--fractions", "0"], "fractions must be in (0, 1]"),
    (["--fractions", "0.1,x"], "--fractions: expected a comma-separated list"),
    (["--budget", "3"], "a budget of 3 forwards"),
])
def test_locate_checks_its_settings_before_the_model_loads(model_dir, tmp_path, monkeypatch, args, text):
    before = _snapshot(model_dir)
    _one_line_exit_2(_locate_cli(monkeypatch, "--model", model_dir, "--out", tmp_path / "r.json", *args), text)
    assert list(tmp_path.iterdir()) == [] and _snapshot(model_dir) == before


def test_plan_locate_is_the_check_that_locate_runs():
    from moft.front.locate import plan_locate

    plan = plan_locate(timesteps=(100, 200), fractions=(0.04,), clips_per_direction=8, max_forwards=100, folds=5)
    assert (plan.clips_per_direction, plan.folds) == (3, 3)  # 100 // (8 directions x 2 kinds x 2 timesteps)
    with pytest.raises(LocateError, match=r"in \[0, 500\)"):
        plan_locate(timesteps=(500,), train_timesteps=500)
    plan_locate(timesteps=(5000,))  # no scheduler known: only the loaded one bounds the timesteps
    with pytest.raises(LocateError, match="needs pans"):
        plan_locate(kinds=("object",))


def test_an_image_to_video_model_sees_each_clip_as_the_animation_of_its_own_frame_0():
    """On a TI2V build each probe clip's forward gets the clip's frame-0 latent as the image (clean, at timestep 0):
    its frame-0 summary equals a forward given that latent by hand (the VAE alone), and differs from the
    text-to-video forward the same transformer would make without it."""
    from moft.front.locate import _clip_summaries
    from moft.method.capture import capture
    from moft.models.adapters import call_denoiser
    from moft.method.features import region_mean, resize
    from moft.method.inversion import noise_latents
    from moft.models.latents import encode_prompt, encode_video
    from moft.models.tiny import build_tiny_wan_i2v

    pipe = build_tiny_wan_i2v(seed=0)
    plan = plan_locate(timesteps=(300,), fractions=(), kinds=("object",), clips_per_direction=2)
    clips = probe_clips(num_frames=9, height=32, width=32, per_direction=2, kinds=("object",), seed=SEED)
    site = "blocks.0"
    out, _ = _clip_summaries(pipe, clips, [site], plan, crop=0.5, seed=SEED)
    for n in (0, 5):
        z0 = encode_video(pipe, clips[n].frames)  # (1, F, C, h, w)
        noise = torch.randn(z0.shape, generator=torch.Generator("cpu").manual_seed(SEED + n))
        x = noise_latents(pipe, z0, noise, 300)
        region = torch.nn.functional.interpolate(torch.from_numpy(clips[n].region)[None, None], size=z0.shape[-2:],
                                                 mode="area")[0, 0]  # (h, w)
        means = []
        for cond in ({"first_frame": encode_video(pipe, clips[n].frames[:1])}, {}):
            with capture(pipe.transformer, [site], detach=True, stop=True) as cap:
                call_denoiser(pipe.transformer, x, torch.tensor(300), dict(cond, encoder_hidden_states=encode_prompt(pipe, "")))
            f = resize(cap.features[site].float(), tuple(z0.shape[-2:]))[0, 0]  # (C, h, w) frame 0, latent grid
            means.append(region_mean(f, region).numpy())  # (C,)
        assert np.allclose(out.raw[site, 300][n], means[0], atol=1e-5)
        assert not np.allclose(out.raw[site, 300][n], means[1], atol=1e-3)

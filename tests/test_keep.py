"""``moft.method.keep``: blending with the source, the source and cut-and-drag starts, the dual clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moft.front.control import ControlError, control
from moft.io.trajectory import load_trajectory, parse_trajectory
from moft.method.drag import drag_video, swept_masks
from moft.method.keep import LatentLog, blend, cut_drag_start, drag_inputs, keep_plan, region_mask
from moft.method.sampler import GuidanceConfig, SamplerError, sample
from moft.method.targets import drag_target
from moft.models.latents import encode_video
from moft.models.pipeline import sampling_scheduler

from conftest import DIT_FRAMES, FRAMES

pytestmark = pytest.mark.usefixtures("single_thread")
EXAMPLES = Path(__file__).parents[1] / "examples"


def test_blend_keeps_the_region_and_takes_the_source_elsewhere():
    g = torch.Generator().manual_seed(0)
    z, src = torch.randn(1, 3, 4, 6, 6, generator=g), torch.randn(1, 3, 4, 6, 6, generator=g)  # (B, F, C, h, w)
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[0, 1:3, 1:4] = masks[1, 4, 5] = True
    out = blend(z, src, region_mask(masks))
    inside = masks.any(0)  # (h, w)
    assert torch.equal(out[..., inside], z[..., inside])
    assert torch.equal(out[..., ~inside], src[..., ~inside])


def test_cut_drag_start_is_the_noise_at_full_noise_and_the_closed_form_between(wan, animatediff):
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(1, 3, 4, 8, 8, generator=g), torch.randn(1, 3, 4, 8, 8, generator=g)
    sched = sampling_scheduler(wan)
    sched.set_timesteps(25)
    assert torch.allclose(cut_drag_start(wan, x0, eps, sched.timesteps[0]), eps, atol=1e-6)  # flow: t = 1000
    t = sched.timesteps[7]
    s = float(sched.sigmas[7])  # the flow's noise level at step 7: (1 - s) x0 + s eps
    assert torch.allclose(cut_drag_start(wan, x0, eps, t), (1 - s) * x0 + s * eps, atol=1e-5)
    alpha = sampling_scheduler(animatediff).alphas_cumprod[600]  # DDPM: sqrt(abar) x0 + sqrt(1 - abar) eps
    assert torch.allclose(cut_drag_start(animatediff, x0, eps, 600), alpha.sqrt() * x0 + (1 - alpha).sqrt() * eps,
                          atol=1e-5)


def _source(pipe, steps=6, seed=0, frames=FRAMES):
    log = LatentLog()
    src = sample(pipe, "a red disk", seed=seed, steps=steps, num_frames=frames, height=32, width=32, callback=log)
    return src, log.started(src.initial_latents)


@pytest.fixture(scope="module")
def traj():
    return load_trajectory(EXAMPLES / "object_left.json", default_frames=FRAMES)


@pytest.mark.parametrize("fixture", ["animatediff", "wan"])
def test_starting_from_the_source_skips_steps_and_changes_nothing(request, fixture, tiny_channels):
    # before the first guided step the guided run and the source are the same computation
    pipe = request.getfixturevalue(fixture)
    frames = FRAMES if fixture == "animatediff" else DIT_FRAMES
    traj = load_trajectory(EXAMPLES / "object_left.json", default_frames=frames)
    src, log = _source(pipe, frames=frames)
    masks = torch.from_numpy(swept_masks(traj, (32, 32), (16, 16)))
    target = moft_target(pipe, src, traj)
    full = sample(pipe, "a red disk", steps=6, height=32, width=32, latents=src.initial_latents, target=target,
                  guidance=GuidanceConfig(steps=(3, 5), iterations=1, shared_kv=False, loss="per_position"))
    g = GuidanceConfig(steps=(3, 5), iterations=1, shared_kv=False, loss="per_position", start="source")
    seen = []
    short = sample(pipe, "a red disk", steps=6, height=32, width=32, latents=src.initial_latents, target=target,
                   guidance=g, keep=keep_plan(pipe, g, steps=6, masks=masks, log=log),
                   callback=lambda info: seen.append(info["i"]))
    assert seen == [3, 4, 5] and short.counts["forwards"] < full.counts["forwards"]
    assert torch.allclose(short.latents, full.latents, atol=1e-5)


def moft_target(pipe, src, traj):
    return drag_target(pipe, src.frames, traj, channels=None, num_steps=6)


def test_keeping_latents_leaves_the_outside_equal_to_the_source(animatediff, traj):
    src, log = _source(animatediff)
    masks = torch.from_numpy(swept_masks(traj, (32, 32), (16, 16)))
    g = GuidanceConfig(steps=(1, 5), iterations=2, step_size=5.0, shared_kv=False, loss="per_position", keep="latents")
    out = sample(animatediff, "a red disk", steps=6, latents=src.initial_latents, target=moft_target(animatediff, src, traj),
                 guidance=g, keep=keep_plan(animatediff, g, steps=6, masks=masks, log=log))
    inside = masks.any(0)
    assert torch.equal(out.latents[..., ~inside], log.after[5][..., ~inside])
    assert not torch.allclose(out.latents[..., inside], log.after[5][..., inside], atol=1e-3)  # guidance moved it


def _cut_drag_plan(wan, release: int):
    """A 6-step cut-and-drag plan on the DiT (guided steps 1-3, the region released at ``release``) and what it is
    checked against: ``(plan, source, masks, proxy latents, guidance, timesteps)``."""
    traj = load_trajectory(EXAMPLES / "object_left.json", default_frames=DIT_FRAMES)
    src, log = _source(wan, frames=DIT_FRAMES)
    masks = torch.from_numpy(swept_masks(traj, (32, 32), (16, 16)))
    proxy = drag_video(src.frames, traj)
    g = GuidanceConfig(steps=(1, 4), start="proxy", release=release, method="cut-drag")
    plan = keep_plan(wan, g, steps=6, masks=masks, log=log, proxy_frames=proxy)
    z0 = encode_video(wan, (proxy * 255).round().astype(np.uint8))
    sched = sampling_scheduler(wan)
    sched.set_timesteps(6)
    return plan, src, masks, z0, g, sched.timesteps


def test_dual_clock_holds_the_region_on_the_noised_proxy_until_release(wan):
    plan, src, masks, z0, g, timesteps = _cut_drag_plan(wan, release=4)
    assert torch.allclose(plan.start, cut_drag_start(wan, z0, src.initial_latents, timesteps[1]), atol=1e-5)
    seen = {}
    out = sample(wan, "a red disk", steps=6, height=32, width=32, latents=src.initial_latents, guidance=g, keep=plan,
                 callback=lambda info: seen.__setitem__(info["i"], info["latents"].clone()))
    inside = masks.any(0)
    for i in (1, 2):  # steps before release: the region is the proxy at the next noise level
        want = cut_drag_start(wan, z0, src.initial_latents, timesteps[i + 1])
        assert torch.allclose(seen[i][..., inside], want[..., inside], atol=1e-5)
    assert not torch.allclose(seen[3][..., inside],
                              cut_drag_start(wan, z0, src.initial_latents, timesteps[4])[..., inside], atol=1e-3)
    assert out.counts["backwards"] == 0 and sorted(seen) == [1, 2, 3, 4, 5]


def test_a_release_beyond_a_short_schedule_holds_the_region_to_the_last_step_which_runs_free(wan):
    """``release=20`` (tuned on 25 steps) on a 6-step run: the region follows the noised proxy after steps 1-4 and
    the last step denoises it freely (no timestep after the last one: it used to raise IndexError)."""
    plan, src, masks, z0, g, timesteps = _cut_drag_plan(wan, release=20)
    seen = {}
    sample(wan, "a red disk", steps=6, height=32, width=32, latents=src.initial_latents, guidance=g, keep=plan,
           callback=lambda info: seen.__setitem__(info["i"], info["latents"].clone()))
    inside = masks.any(0)
    want = cut_drag_start(wan, z0, src.initial_latents, timesteps[5])
    assert torch.allclose(seen[4][..., inside], want[..., inside], atol=1e-5)  # held through step 4
    assert not torch.allclose(seen[5][..., inside], z0[..., inside], atol=1e-3)  # the last step is the model's


def test_settings_check_the_levers():
    with pytest.raises(SamplerError, match="start 'proxy'"):
        GuidanceConfig(method="cut-drag")
    with pytest.raises(SamplerError, match="keep must be one of"):
        GuidanceConfig(keep="x0s")
    with pytest.raises(SamplerError, match="release"):
        GuidanceConfig(start="proxy", release=-1)
    with pytest.raises(SamplerError, match="drag_frame must be an integer >= 0"):
        GuidanceConfig(drag_frame=-1)
    assert not GuidanceConfig(start="proxy", method="cut-drag").iterates and GuidanceConfig().iterates


def test_control_cut_drag_makes_no_backward_and_keep_needs_a_trajectory(animatediff, traj):
    g = GuidanceConfig(steps=(2, 4), start="proxy", release=4, method="cut-drag", keep="latents")
    res = control(animatediff, traj, prompt="a red disk", steps=6, guidance=g, keep_source=True, target_kind="drag")
    assert res.target is None and res.result.counts["backwards"] == 0
    assert res.proxy_frames.shape == res.frames.shape and not np.allclose(res.frames, res.source_frames)
    far = ~np.asarray(swept_masks(traj, (32, 32), (32, 32)).any(0))  # pixels no region passes
    assert np.abs(res.frames - res.source_frames)[:, far].mean() < np.abs(res.frames - res.source_frames).mean()
    with pytest.raises(ControlError, match="need a trajectory"):
        control(animatediff, None, prompt="x", steps=6, guidance=g, target_kind="drag")


def test_the_proxy_is_cut_from_the_drag_frame():
    frames = np.zeros((4, 32, 32, 3), np.float32)  # (F, H, W, 3): a dim green square in frame 0, bright after
    frames[0, 8:16, 8:16] = (0.0, 0.45, 0.0)
    frames[1:, 7:17, 7:17] = (0.0, 1.0, 0.0)  # frames 1..3: the square as the later frames render it, a pixel larger
    traj = parse_trajectory({"version": 1, "frames": 4, "regions": [{"points": [[0.36, 0.36], [0.61, 0.36]],
                                                                      "radius": 0.05}]})  # its centre, 8 px right
    green = lambda video: video[..., 1] > 0.8  # noqa: E731
    for frame, bright, side in ((0, 0, 8), (1, 100, 10)):
        g = GuidanceConfig(point_region="segment", drag_frame=frame)
        grown, proxy, _ = drag_inputs(None, g, traj, frames, steps=25, size=(32, 32), latent_size=(4, 4), log=None)
        assert green(proxy[0]).sum() == bright  # frame 0 of the proxy: the cut frame's square
        cut = grown.regions[0]._grey > 0  # the segment: the square of the cut frame and a one-pixel rim
        assert cut.sum() == (side + 2) ** 2
        assert np.abs(proxy[-1, 8:16, 16:24] - frames[frame, 8:16, 8:16]).max() < 1e-6  # the square, moved 8 px
    with pytest.raises(SamplerError, match=r"drag_frame 4 is not a frame of the 4 made \(0..3\)"):
        drag_inputs(None, GuidanceConfig(drag_frame=4), traj, frames, steps=25, size=(32, 32), latent_size=(4, 4),
                    log=None)

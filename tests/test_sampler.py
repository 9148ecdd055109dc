"""The guided sampler: equals the stock pipelines unguided, reproducible, loss falls, mask holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moft.method.sampler import GuidanceConfig, gradient_mask, guidance_loss, sample
from moft.method.targets import Target, synthesize_target
from moft.io.trajectory import parse_trajectory

from conftest import FRAMES, SIZE

STEPS = 5


def _target(channels, region=None):
    region = region or {"mask": {"box": [0.25, 0.25, 0.75, 0.75]}, "direction": "left", "speed": 0.08}
    traj = parse_trajectory({"version": 1, "frames": FRAMES, "regions": [region]})
    return synthesize_target(traj, channels, latent_size=(16, 16))


def _no_hooks(net) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


@pytest.mark.parametrize("fixture", ["animatediff", "modelscope"])
def test_unguided_sampler_equals_stock_pipeline(request, fixture):
    pipe = request.getfixturevalue(fixture)
    ours = sample(pipe, "a red disk", steps=STEPS, seed=7, guidance_scale=7.5).frames
    stock = pipe("a red disk", num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                 guidance_scale=7.5, generator=torch.Generator().manual_seed(7), output_type="np").frames[0]
    np.testing.assert_allclose(ours, np.asarray(stock), atol=1e-5)


def test_same_seed_reproduces_bit_for_bit_with_guidance(animatediff, tiny_channels):
    g = GuidanceConfig(steps=(1, 3), iterations=1)
    a = sample(animatediff, "a red disk", steps=STEPS, seed=3, target=_target(tiny_channels), guidance=g)
    b = sample(animatediff, "a red disk", steps=STEPS, seed=3, target=_target(tiny_channels), guidance=g)
    assert np.array_equal(a.frames, b.frames)
    assert [x["loss"] for x in a.losses] == [x["loss"] for x in b.losses]


def test_different_seeds_differ(animatediff):
    a = sample(animatediff, "a red disk", steps=2, seed=1).frames
    b = sample(animatediff, "a red disk", steps=2, seed=2).frames
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("fixture", ["animatediff", "modelscope"])
def test_loss_falls_over_iterations(request, fixture):
    from moft.method.channels import fit_channels

    pipe = request.getfixturevalue(fixture)
    ch = fit_channels(pipe, method="noise", scenes=1)
    g = GuidanceConfig(steps=(1, 2), iterations=4, step_size=20.0, shared_kv=False)
    out = sample(pipe, "a red disk", steps=STEPS, seed=0, target=_target(ch), guidance=g)
    losses = [x["loss"] for x in out.losses]
    assert len(losses) == 4
    assert losses[-1] < losses[0]


def test_gradient_is_zero_outside_the_mask(animatediff, tiny_channels):
    target = _target(tiny_channels)
    init = sample(animatediff, "a red disk", steps=STEPS, seed=0).initial_latents
    g = GuidanceConfig(steps=(0, 1), iterations=1, step_size=50.0, shared_kv=False, grad_mask="all")
    # guide step 0 only, then compare against an unguided run's first step: outside the mask the
    # latents must be untouched by guidance, so the step-0 update differs only inside it.
    from moft.method.sampler import GuidanceState, guidance_step

    net = animatediff.unet
    cond = {"encoder_hidden_states": torch.zeros(1, 20, 64)}
    animatediff.scheduler.set_timesteps(STEPS)
    t = animatediff.scheduler.timesteps[0]
    mask = gradient_mask(target, init.shape, "all")
    state = GuidanceState(target, g, cond, None, "up_blocks.1", 6.0, mask)
    z = guidance_step(net, init.clone(), t, 0, state)
    delta = (z - init).abs()  # (1, F, C, h, w)
    outside = ~target.masks.any(0)
    assert delta[..., outside].max() == 0
    assert delta[..., ~outside].max() > 0


def test_first_n_frames_mask_leaves_later_frames_free(tiny_channels):
    target = _target(tiny_channels)
    m = gradient_mask(target, torch.Size([1, FRAMES, 4, 16, 16]), "first:3")
    outside = ~target.masks.any(0)
    assert m[0, :3, 0][:, outside].max() == 0
    assert m[0, 3:, 0].min() == 1


def test_no_mask_mode_returns_none(tiny_channels):
    assert gradient_mask(_target(tiny_channels), torch.Size([1, FRAMES, 4, 16, 16]), "off") is None


def test_per_position_loss_is_zero_on_the_target_itself(tiny_channels):
    target = _target(tiny_channels)
    d = len(target.channels)
    feat = target.curves[0][None, :, :, None, None].expand(1, FRAMES, d, 16, 16)
    for kind in ("region_mse", "per_position"):
        loss, _ = guidance_loss(feat, target, kind)
        assert float(loss) < 1e-5


def test_region_mse_matches_manual_value(tiny_channels):
    target = _target(tiny_channels)
    feat = torch.randn(1, FRAMES, len(target.channels), 16, 16)
    loss, _ = guidance_loss(feat, target, "region_mse")
    m = target.masks[0]
    manual = ((feat[0][..., m].mean(-1) - target.curves[0]) ** 2).mean()
    assert torch.allclose(loss, manual, atol=1e-6)


def test_hooks_and_processors_are_gone_after_a_failure_mid_sampling(animatediff, tiny_channels):
    net = animatediff.unet
    before = {k: type(v) for k, v in net.attn_processors.items()}

    def explode(i, total):
        if i == 2:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        sample(animatediff, "a red disk", steps=STEPS, seed=0, target=_target(tiny_channels),
               guidance=GuidanceConfig(steps=(0, 4), iterations=1, checkpointing=True), progress=explode)
    assert _no_hooks(net)
    assert {k: type(v) for k, v in net.attn_processors.items()} == before
    assert not net.is_gradient_checkpointing


def test_keep_source_equals_an_unguided_run(animatediff, tiny_channels):
    g = GuidanceConfig(steps=(1, 3), iterations=1, step_size=5.0)
    guided = sample(animatediff, "a red disk", steps=STEPS, seed=4, target=_target(tiny_channels), guidance=g,
                    keep_source=True)
    plain = sample(animatediff, "a red disk", steps=STEPS, seed=4)
    np.testing.assert_allclose(guided.source_frames, plain.frames, atol=1e-6)
    assert not np.allclose(guided.frames, plain.frames, atol=1e-6)


def test_early_exit_gives_the_same_update_as_a_full_pass(animatediff, tiny_channels):
    outs = []
    for early in (True, False):
        g = GuidanceConfig(steps=(1, 2), iterations=1, early_exit=early, shared_kv=False)
        outs.append(sample(animatediff, "a red disk", steps=3, seed=5, target=_target(tiny_channels), guidance=g))
    np.testing.assert_allclose(outs[0].frames, outs[1].frames, atol=1e-6)


def test_shared_kv_changes_the_guided_update(animatediff, tiny_channels):
    runs = [sample(animatediff, "a red disk", steps=4, seed=6, target=_target(tiny_channels),
                   guidance=GuidanceConfig(steps=(1, 3), iterations=1, step_size=20.0, shared_kv=kv))
            for kv in (True, False)]
    assert not np.array_equal(runs[0].frames, runs[1].frames)


def test_counts_record_denoiser_work(animatediff, tiny_channels):
    g = GuidanceConfig(steps=(1, 3), iterations=2, shared_kv=True)
    out = sample(animatediff, "a red disk", steps=4, seed=0, target=_target(tiny_channels), guidance=g)
    # 4 CFG steps (2 each) + 2 guided steps x (source CFG pass 2 + 2 loss forwards)
    assert out.counts["forwards"] == 4 * 2 + 2 * (2 + 2)
    assert out.counts["backwards"] == 4


def test_target_frame_mismatch_is_an_error(animatediff, tiny_channels):
    t = _target(tiny_channels)
    bad = Target(t.curves[:, :4], t.masks, t.channels)
    with pytest.raises(ValueError, match="frames"):
        sample(animatediff, "x", steps=2, target=bad)


def test_bad_guidance_settings_are_rejected():
    with pytest.raises(ValueError, match="grad_mask"):
        GuidanceConfig(grad_mask="some")
    with pytest.raises(ValueError, match="loss"):
        GuidanceConfig(loss="l1")


def test_official_style_cfg_loss_batch_gives_the_same_update(animatediff, tiny_channels):
    outs = []
    for batch in ("cond", "cfg"):
        g = GuidanceConfig(steps=(1, 2), iterations=1, shared_kv=False, loss_batch=batch, early_exit=batch == "cond")
        outs.append(sample(animatediff, "a red disk", steps=3, seed=5, target=_target(tiny_channels), guidance=g))
    np.testing.assert_allclose(outs[0].frames, outs[1].frames, atol=1e-5)
    assert outs[1].counts["forwards"] == outs[0].counts["forwards"] + 1


def test_a_multistep_scheduler_is_replaced_by_ddim_with_the_same_noise_schedule(animatediff):
    from diffusers import DPMSolverMultistepScheduler

    from moft.models.loading import ddim_scheduler

    original = animatediff.scheduler
    try:
        animatediff.scheduler = DPMSolverMultistepScheduler.from_config(original.config)
        sched = ddim_scheduler(animatediff)
        assert type(sched).__name__ == "DDIMScheduler"
        assert torch.allclose(sched.alphas_cumprod, original.alphas_cumprod)
        a = sample(animatediff, "a red disk", steps=3, seed=1).frames
        assert type(animatediff.scheduler).__name__ == "DPMSolverMultistepScheduler"
        assert np.isfinite(a).all()
    finally:
        animatediff.scheduler = original


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_sample_refuses_a_schedule_that_cannot_run_in_one_line(animatediff, steps):
    """The library API says what is wrong in moft's own error type (the CLI checks the same earlier)."""
    from moft.method.sampler import SamplerError, sample

    with pytest.raises(SamplerError, match=r"steps must be (in 1\.\.10000|an integer)") as info:
        sample(animatediff, "a red disk", steps=steps)
    assert "\n" not in str(info.value)
    with pytest.raises(SamplerError, match="guidance_scale must be a finite number"):
        sample(animatediff, "a red disk", steps=2, guidance_scale=float("nan"))


# ---------------------------------------------------------------------------
# the levers: optimisers, step schedule, cosine distance, gradient reuse
# ---------------------------------------------------------------------------


def test_a_normalized_step_has_the_step_size_as_its_length():
    from moft.method.sampler import latent_update

    g = GuidanceConfig(optimizer="normalized")
    for seed in range(3):
        grad = torch.randn(1, FRAMES, 4, 16, 16, generator=torch.Generator().manual_seed(seed)) * 10 ** seed
        delta = latent_update(grad, g, 0.7, {})
        assert torch.isclose(delta.norm(), torch.tensor(0.7), rtol=1e-5)
        assert torch.allclose(delta / delta.norm(), grad / grad.norm(), atol=1e-6)  # along the gradient


def test_sgd_is_the_official_update():
    from moft.method.sampler import latent_update

    grad = torch.randn(2, 3)
    assert torch.equal(latent_update(grad, GuidanceConfig(), 0.5, {}), 0.5 * grad)


def test_adam_steps_by_the_learning_rate_then_converges_on_a_quadratic():
    """Adam's first bias-corrected step is lr * sign(grad) per entry; on f(x) = |A (x - c)|^2 / 2 with an
    ill-conditioned A its iterates reach c (within a fraction of the learning rate)."""
    from moft.method.sampler import latent_update

    g = GuidanceConfig(optimizer="adam")
    grad = torch.tensor([3.0, -0.001, 40.0])
    assert torch.allclose(latent_update(grad, g, 0.1, {}), 0.1 * grad.sign(), atol=1e-5)
    scale, c = torch.tensor([10.0, 1.0, 0.1]), torch.tensor([1.0, -2.0, 0.5])
    x, moments = torch.zeros(3), {}
    for n in range(3000):
        x = x - latent_update(scale ** 2 * (x - c), g, 0.01 if n < 2000 else 0.001, moments)
    assert torch.allclose(x, c, atol=0.01)
    assert moments["n"] == 3000


def test_the_step_schedule_is_linear_over_the_guided_steps():
    g = GuidanceConfig(steps=(2, 7), step_size=3.0, step_size_end=1.0)
    assert [g.step_size_at(i) for i in range(2, 7)] == [3.0, 2.5, 2.0, 1.5, 1.0]
    assert GuidanceConfig(steps=(2, 7), step_size=3.0).step_size_at(6) == 3.0  # no end: constant


def test_cosine_distance_ignores_the_feature_scale(tiny_channels):
    target = _target(tiny_channels)
    d = len(target.channels)
    feat = torch.randn(1, FRAMES, d, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = torch.randn(1, FRAMES, d, 16, 16, generator=torch.Generator().manual_seed(1))
    mapped = Target(target.curves, target.masks, target.channels, maps=maps)
    for kind in ("per_position", "region_mse"):
        t = mapped if kind == "per_position" else target
        base = float(guidance_loss(feat, t, kind, "cosine")[0])
        assert abs(float(guidance_loss(7.5 * feat, t, kind, "cosine")[0]) - base) < 1e-5
        assert float(guidance_loss(7.5 * feat, t, kind, "l2")[0]) != pytest.approx(float(guidance_loss(feat, t, kind, "l2")[0]))
    # the target itself, scaled up: cosine 0; its negative: cosine 2 (1 - (-1))
    assert float(guidance_loss(3 * maps[None, 0], mapped, "per_position", "cosine")[0]) < 1e-5
    assert abs(float(guidance_loss(-maps[None, 0], mapped, "per_position", "cosine")[0]) - 2.0) < 1e-5


def _one_guided_step(pipe, target, i, **settings):
    from moft.method.sampler import GuidanceState, guidance_step

    g = GuidanceConfig(shared_kv=False, grad_mask="off", **settings)
    z = torch.randn(1, FRAMES, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cond = {"encoder_hidden_states": torch.zeros(1, 20, 64)}
    state = GuidanceState(target, g, cond, None, "up_blocks.1", 6.0)
    return z, guidance_step(pipe.unet, z, torch.tensor(500), i, state), state


def test_the_scheduled_step_size_is_the_one_applied(animatediff, tiny_channels):
    target = _target(tiny_channels)
    ramp = dict(steps=(2, 7), iterations=1, step_size=3.0, step_size_end=1.0)
    for i, eta in ((2, 3.0), (6, 1.0)):
        _, scheduled, _ = _one_guided_step(animatediff, target, i, **ramp)
        _, constant, _ = _one_guided_step(animatediff, target, i, steps=(2, 7), iterations=1, step_size=eta)
        assert torch.allclose(scheduled, constant, atol=1e-6)


def test_gradient_reuse_repeats_the_last_gradient(animatediff, tiny_channels):
    """With grad_every=2, two sgd iterations are one gradient applied twice: one step of twice the size."""
    target = _target(tiny_channels)
    z, reused, state = _one_guided_step(animatediff, target, 0, iterations=2, step_size=4.0, grad_every=2)
    _, double, _ = _one_guided_step(animatediff, target, 0, iterations=1, step_size=8.0)
    assert torch.allclose(reused, double, atol=1e-5) and not torch.allclose(reused, z)
    assert state.counts["backwards"] == 1 and [r["reused"] for r in state.losses] == [False, True]
    _, every, full = _one_guided_step(animatediff, target, 0, iterations=2, step_size=4.0)
    assert full.counts["backwards"] == 2 and not torch.allclose(every, reused, atol=1e-5)


def test_timed_targets_are_compared_at_the_guided_timestep(animatediff, tiny_channels):
    """A target holding maps at two timesteps: guidance at t = 500 uses the map of t = 480, so it gives
    the same update as a plain target of that map (and not of the other)."""
    target = _target(tiny_channels)
    d = len(target.channels)
    maps = torch.randn(2, 1, FRAMES, d, 16, 16, generator=torch.Generator().manual_seed(3))
    timed = Target(target.curves, target.masks, target.channels, maps=maps[1], timed_maps=maps,
                   meta={"timesteps": [480, 900]})
    plain = [Target(target.curves, target.masks, target.channels, maps=maps[k]) for k in (0, 1)]
    runs = [_one_guided_step(animatediff, t, 0, iterations=1, step_size=5.0, loss="per_position")[1]
            for t in (timed, *plain)]
    assert torch.allclose(runs[0], runs[1], atol=1e-6) and not torch.allclose(runs[0], runs[2], atol=1e-4)


@pytest.mark.parametrize("field, value", [("optimizer", "rmsprop"), ("distance", "l1"), ("grad_every", 0),
                                          ("step_size_end", -1.0), ("target_mode", "ddpm"),
                                          ("target_timesteps", "all")])
def test_bad_lever_settings_are_rejected_in_one_line(field, value):
    from moft.method.sampler import SamplerError

    with pytest.raises(SamplerError, match=field) as info:
        GuidanceConfig(**{field: value})
    assert "\n" not in str(info.value)

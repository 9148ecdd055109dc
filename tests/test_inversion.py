"""DDIM inversion and forward noising: prediction-type algebra, the inversion schedule, captured features."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler

from moft.models.adapters import call_denoiser
from moft.method.capture import capture
from moft.method.inversion import ddim_invert, noised_features, split_prediction

from conftest import FRAMES, text_cond

pytestmark = pytest.mark.usefixtures("single_thread")

STEPS = 4
PREDICTIONS = ["epsilon", "v_prediction", "sample"]


def _z0(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, FRAMES, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def _model_output(kind: str, x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    if kind == "epsilon":
        return eps
    if kind == "v_prediction":
        return a.sqrt() * eps - (1 - a).sqrt() * x0
    return x0


@pytest.fixture(scope="module")
def cond(animatediff):
    return text_cond(animatediff, "")


@pytest.fixture(scope="module")
def inversion(animatediff, cond):
    return ddim_invert(animatediff, _z0(), cond, num_steps=STEPS, capture_step=1)


# ---------------------------------------------------------------------------
# split_prediction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PREDICTIONS)
@pytest.mark.parametrize("t", [1, 250, 500, 999])
def test_split_prediction_inverts_forward_noising(kind, t):
    sched = DDIMScheduler(prediction_type=kind)
    g = torch.Generator().manual_seed(t)
    x0 = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    x = sched.add_noise(x0, eps, torch.tensor([t]))
    a = sched.alphas_cumprod[t].double()
    got_x0, got_eps = split_prediction(sched, _model_output(kind, x0, eps, a), x, t)
    torch.testing.assert_close(got_x0, x0, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(got_eps, eps, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_split_prediction_uses_the_final_alpha_before_the_first_step(kind):
    sched = DDIMScheduler(prediction_type=kind, set_alpha_to_one=False)
    a = sched.final_alpha_cumprod.double()
    assert float(a) < 1.0  # alphas_cumprod[0], so the check below is not trivial
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    x = a.sqrt() * x0 + (1 - a).sqrt() * eps
    got_x0, got_eps = split_prediction(sched, _model_output(kind, x0, eps, a), x, -1)
    torch.testing.assert_close(got_x0, x0)
    torch.testing.assert_close(got_eps, eps)


def test_split_prediction_rejects_an_unknown_prediction_type():
    sched = SimpleNamespace(alphas_cumprod=torch.full((10,), 0.5), config=SimpleNamespace(prediction_type="flow"))
    with pytest.raises(ValueError, match="flow"):
        split_prediction(sched, torch.zeros(3), torch.zeros(3), 5)


# ---------------------------------------------------------------------------
# ddim_invert
# ---------------------------------------------------------------------------


def test_ddim_invert_returns_one_latent_per_step(inversion):
    assert len(inversion.latents) == STEPS
    assert all(z.shape == (1, FRAMES, 4, 16, 16) for z in inversion.latents)


def test_ddim_invert_runs_timesteps_in_ascending_order(animatediff, inversion):
    assert inversion.timesteps == sorted(inversion.timesteps)
    assert len(set(inversion.timesteps)) == STEPS
    animatediff.scheduler.set_timesteps(STEPS)
    assert inversion.timesteps == sorted(int(t) for t in animatediff.scheduler.timesteps)


def test_ddim_invert_captures_features_at_the_capture_step(inversion):
    assert list(inversion.features) == ["up_blocks.1"]
    assert inversion.features["up_blocks.1"].shape == (1, FRAMES, 64, 16, 16)


def test_ddim_invert_features_come_from_the_previous_latent_at_the_step_timestep(animatediff, cond, inversion):
    """Step i calls the denoiser at the i-th smallest timestep on the latent of step i - 1."""
    net = animatediff.unet
    with torch.no_grad(), capture(net, stop=True) as cap:
        call_denoiser(net, inversion.latents[0], inversion.timesteps[1], cond)
    torch.testing.assert_close(inversion.features["up_blocks.1"], cap.output)


def test_ddim_invert_first_step_is_the_deterministic_ddim_update(animatediff, cond, inversion):
    sched, net = animatediff.scheduler, animatediff.unet
    t = inversion.timesteps[0]
    with torch.no_grad():
        out = call_denoiser(net, _z0(), t, cond)
    x0, eps = split_prediction(sched, out, _z0(), -1)
    a = sched.alphas_cumprod[t]
    torch.testing.assert_close(inversion.latents[0], a.sqrt() * x0 + (1 - a).sqrt() * eps)


def test_ddim_invert_without_capture_step_captures_nothing(animatediff, cond):
    inv = ddim_invert(animatediff, _z0(), cond, num_steps=2)
    assert inv.features == {}
    assert len(inv.latents) == 2


def test_ddim_invert_stop_after_capture_stops_early(animatediff, cond):
    steps_seen = []
    inv = ddim_invert(animatediff, _z0(), cond, num_steps=STEPS, capture_step=1, stop_after_capture=True,
                      progress=steps_seen.append)
    assert len(inv.latents) == 2
    assert steps_seen == [0, 1]
    assert inv.features["up_blocks.1"].shape == (1, FRAMES, 64, 16, 16)


def test_ddim_invert_stopped_early_matches_the_full_run(animatediff, cond, inversion):
    inv = ddim_invert(animatediff, _z0(), cond, num_steps=STEPS, capture_step=1, stop_after_capture=True)
    torch.testing.assert_close(inv.features["up_blocks.1"], inversion.features["up_blocks.1"])
    torch.testing.assert_close(inv.latents[1], inversion.latents[1])


def test_ddim_invert_with_sample_prediction_gives_finite_latents(animatediff, cond):
    sched = DDIMScheduler.from_config(animatediff.scheduler.config, prediction_type="sample")
    assert sched.final_alpha_cumprod == 1.0
    pipe = SimpleNamespace(unet=animatediff.unet, scheduler=sched)
    inv = ddim_invert(pipe, _z0(), cond, num_steps=2)
    assert all(torch.isfinite(z).all() for z in inv.latents)


# ---------------------------------------------------------------------------
# noised_features
# ---------------------------------------------------------------------------


def test_noised_features_are_deterministic_for_a_seed(animatediff, cond):
    a = noised_features(animatediff, _z0(), cond, timestep=200, seed=5)
    b = noised_features(animatediff, _z0(), cond, timestep=200, seed=5)
    assert torch.equal(a["up_blocks.1"], b["up_blocks.1"])


def test_noised_features_differ_between_seeds(animatediff, cond):
    a = noised_features(animatediff, _z0(), cond, timestep=200, seed=5)
    b = noised_features(animatediff, _z0(), cond, timestep=200, seed=6)
    assert not torch.allclose(a["up_blocks.1"], b["up_blocks.1"])


def test_noised_features_shape_per_site(animatediff, cond):
    feats = noised_features(animatediff, _z0(), cond, timestep=200, seed=0,
                            sites=["up_blocks.1", "up_blocks.1.motion_modules.0"])
    assert feats["up_blocks.1"].shape == (1, FRAMES, 64, 16, 16)
    assert feats["up_blocks.1.motion_modules.0"].shape == (1, FRAMES, 64, 8, 8)


def test_noised_features_are_one_pass_on_the_seeded_noised_latents(animatediff, cond):
    sched, net = animatediff.scheduler, animatediff.unet
    noise = torch.randn(_z0().shape, generator=torch.Generator("cpu").manual_seed(5))
    x = sched.add_noise(_z0(), noise, torch.tensor([200]))
    with torch.no_grad(), capture(net, stop=True) as cap:
        call_denoiser(net, x, 200, cond)
    got = noised_features(animatediff, _z0(), cond, timestep=200, seed=5)["up_blocks.1"]
    torch.testing.assert_close(got, cap.output)


def test_ddim_invert_captures_at_several_steps_what_single_runs_capture(animatediff, cond):
    both = ddim_invert(animatediff, _z0(), cond, num_steps=STEPS, capture_step=[1, 2], stop_after_capture=True)
    assert len(both.latents) == 3 and sorted(both.features_at) == [1, 2]
    for step in (1, 2):
        one = ddim_invert(animatediff, _z0(), cond, num_steps=STEPS, capture_step=step, stop_after_capture=True)
        for site, feat in one.features.items():
            assert torch.equal(both.features_at[step][site], feat)

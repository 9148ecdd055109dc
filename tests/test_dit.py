"""Diffusion transformers (Wan, CogVideoX): capture, the stock call, the sampler, inversion, the time grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from einops import rearrange

from moft.models.adapters import architecture_of, call_denoiser, default_site
from moft.method.capture import capture
from moft.models.latents import encode_prompt, encode_video, initial_noise
from moft.models.pipeline import FramesError, check_frames, latent_frames, latent_time_grid
from moft.method.sampler import GuidanceConfig, GuidanceState, gradient_mask, guidance_step, sample
from moft.method.targets import Target

from conftest import DIT_FRAMES

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = 32
DITS = ["wan", "wan_4x", "cogvideox"]


def _noise(pipe, seed=0):
    return initial_noise(pipe, num_frames=DIT_FRAMES, height=SIZE, width=SIZE, seed=seed)


def _cond(pipe, prompt="a red disk"):
    return {"encoder_hidden_states": encode_prompt(pipe, prompt)}


def _no_hooks(net) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


# --- the table ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, container, depth, expected", [
    ("WanTransformer3DModel", "blocks", 30, "blocks.14"),               # FastVMT, Wan-1.3B
    ("CogVideoXTransformer3DModel", "transformer_blocks", 42, "transformer_blocks.20"),  # DiTFlow, 5B
    ("CogVideoXTransformer3DModel", "transformer_blocks", 30, "transformer_blocks.15"),  # DiTFlow, 2B
])
def test_default_site_is_the_published_mid_depth_block(cls, container, depth, expected):
    model = type(cls, (torch.nn.Module,), {})()  # only the class name and the block list matter
    setattr(model, container, torch.nn.ModuleList(torch.nn.Identity() for _ in range(depth)))
    assert default_site(model) == expected


@pytest.mark.parametrize("fixture, name", [("wan", "wan"), ("cogvideox", "cogvideox")])
def test_architecture_of_names_each_dit(request, fixture, name):
    assert architecture_of(request.getfixturevalue(fixture).transformer).name == name


def test_dits_have_no_spatial_self_attention_to_share():
    from moft.models.adapters import ARCHITECTURES

    assert ARCHITECTURES["wan"].spatial_self_attention is None
    assert ARCHITECTURES["cogvideox"].spatial_self_attention is None


# --- calling and capturing ---------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", DITS)
def test_call_denoiser_equals_the_stock_pipelines_call(request, fixture):
    """The stock call, written out: the model's own layout, t per video, CogVideoX's rotary from pixels."""
    pipe = request.getfixturevalue(fixture)
    net, z, cond = pipe.transformer, _noise(pipe), _cond(pipe)
    t = torch.tensor(600)
    kwargs = {}
    if fixture == "cogvideox":
        kwargs["image_rotary_emb"] = pipe._prepare_rotary_positional_embeddings(SIZE, SIZE, z.shape[1], "cpu")
        sample_in = z  # (B, F, C, h, w)
    else:
        sample_in = rearrange(z, "b f c h w -> b c f h w")
    with torch.no_grad():
        stock = net(hidden_states=sample_in, timestep=t.expand(1), encoder_hidden_states=cond["encoder_hidden_states"],
                    return_dict=False, **kwargs)[0]
        ours = call_denoiser(net, z, t, cond)
    if fixture != "cogvideox":
        stock = rearrange(stock, "b c f h w -> b f c h w")
    torch.testing.assert_close(ours, stock, atol=0, rtol=0)


@pytest.mark.parametrize("fixture, tokens", [("wan", (9, 8, 8)), ("wan_4x", (3, 4, 4)), ("cogvideox", (3, 4, 4))])
def test_capture_maps_frame_major_tokens_to_b_f_c_h_w(request, fixture, tokens):
    """Token f*H'W' + y*W' + x of the raw block output lands at [f, :, y, x]."""
    pipe = request.getfixturevalue(fixture)
    net = pipe.transformer
    site = default_site(net)
    raw = {}
    handle = net.get_submodule(site).register_forward_hook(lambda m, a, o: raw.setdefault("x", o))
    try:
        with torch.no_grad(), capture(net) as cap:
            call_denoiser(net, _noise(pipe), 500, _cond(pipe))
    finally:
        handle.remove()
    x = raw["x"][0] if isinstance(raw["x"], tuple) else raw["x"]  # (B, N, C) video tokens
    f, hh, ww = tokens
    assert cap.output.shape == (1, f, x.shape[-1], hh, ww)
    for fi, y, xi in [(0, 0, 0), (f - 1, hh - 1, 0), (f // 2, 1, ww - 1)]:
        assert torch.equal(cap.output[0, fi, :, y, xi], x[0, fi * hh * ww + y * ww + xi])


@pytest.mark.parametrize("fixture", ["wan", "cogvideox"])
def test_early_exit_gives_the_same_gradient_as_the_full_pass(request, fixture):
    pipe = request.getfixturevalue(fixture)
    net, cond = pipe.transformer, _cond(pipe)
    grads = []
    for stop in (False, True):
        z = _noise(pipe).requires_grad_(True)
        with capture(net, detach=False, stop=stop) as cap:
            call_denoiser(net, z, 500, cond)
        (g,) = torch.autograd.grad(cap.output.pow(2).mean(), z)
        grads.append(g)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], atol=0, rtol=0)


@pytest.mark.parametrize("fixture", ["wan", "cogvideox"])
def test_no_hook_survives_an_exception(request, fixture):
    net = request.getfixturevalue(fixture).transformer
    with pytest.raises(RuntimeError, match="boom"):
        with capture(net, [default_site(net), "blocks.0" if fixture == "wan" else "transformer_blocks.0"]):
            raise RuntimeError("boom")
    assert _no_hooks(net)


# --- the sampler -------------------------------------------------------------------------------------

def _unipc(pipe):
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


@pytest.mark.parametrize("fixture, scheduler", [("wan", None), ("wan", "unipc"), ("cogvideox", None)])
def test_unguided_sampler_equals_the_stock_pipeline(request, fixture, scheduler):
    pipe = request.getfixturevalue(fixture)
    original = pipe.scheduler
    if scheduler == "unipc":
        pipe.scheduler = _unipc(pipe)
    try:
        z = _noise(pipe, seed=3)
        ours = sample(pipe, "a red disk", latents=z, steps=4, guidance_scale=4.0, num_frames=DIT_FRAMES,
                      height=SIZE, width=SIZE)
        stock_in = z if fixture == "cogvideox" else rearrange(z, "b f c h w -> b c f h w")
        stock = pipe("a red disk", negative_prompt="", num_frames=DIT_FRAMES, height=SIZE, width=SIZE,
                     num_inference_steps=4, guidance_scale=4.0, latents=stock_in.clone(), output_type="latent").frames
    finally:
        pipe.scheduler = original
    if fixture != "cogvideox":
        stock = rearrange(stock, "b c f h w -> b f c h w")
    torch.testing.assert_close(ours.latents, stock, atol=1e-5, rtol=0)
    assert ours.frames.shape == (DIT_FRAMES, SIZE, SIZE, 3)


def test_initial_noise_is_the_stock_pipelines_for_a_seed(wan, cogvideox):
    from diffusers.utils.torch_utils import randn_tensor

    for pipe, shape, layout in [(wan, (1, 4, 9, 16, 16), "b c f h w"), (cogvideox, (1, 3, 4, 8, 8), "b f c h w")]:
        drawn = randn_tensor(shape, generator=torch.Generator().manual_seed(5))
        assert torch.equal(_noise(pipe, seed=5), rearrange(drawn, f"{layout} -> b f c h w"))


def _target(pipe, z):
    """A per-position target: the MOFT of another video's features, over a centre box region."""
    from moft.method.features import moft

    net = pipe.transformer
    with torch.no_grad(), capture(net, stop=True) as cap:
        call_denoiser(net, _noise(pipe, seed=11), 500, _cond(pipe))
    h, w = z.shape[-2:]
    maps = moft(cap.output, None, (h, w))[0]  # (F, C, h, w)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    curves = maps[:, :, mask].mean(-1)[None]  # (1, F, C)
    return Target(curves, mask[None], None, True, maps[None])


@pytest.mark.parametrize("fixture", ["wan", "cogvideox"])
def test_the_loss_falls_within_a_guided_step(request, fixture):
    pipe = request.getfixturevalue(fixture)
    z = _noise(pipe)
    g = GuidanceConfig(steps=(1, 2), iterations=4, step_size=2.0, loss="per_position", weight=1.0)
    out = sample(pipe, "a red disk", latents=z, steps=3, guidance_scale=4.0, target=_target(pipe, z), guidance=g,
                 num_frames=DIT_FRAMES, height=SIZE, width=SIZE)
    losses = [x["loss"] for x in out.losses]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert _no_hooks(pipe.transformer)


@pytest.mark.parametrize("fixture", ["wan", "cogvideox"])
def test_gradient_is_exactly_zero_outside_the_mask(request, fixture):
    pipe = request.getfixturevalue(fixture)
    z = _noise(pipe)
    target = _target(pipe, z)
    g = GuidanceConfig(iterations=1, step_size=5.0, loss="per_position")
    state = GuidanceState(target, g, _cond(pipe), None, default_site(pipe.transformer), 1.0,
                          gradient_mask(target, z.shape, "all"))
    moved = guidance_step(pipe.transformer, z.clone(), torch.tensor(700.0), 0, state) - z  # (1, F, C, h, w)
    assert moved[..., ~target.masks[0]].abs().max() == 0
    assert moved[..., target.masks[0]].abs().max() > 0


def test_a_failing_guided_step_leaves_the_model_as_it_was(wan, monkeypatch):
    import moft.method.sampler as sampler_module

    z = _noise(wan)
    net = wan.transformer

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sampler_module, "guidance_loss", boom)
    g = GuidanceConfig(steps=(0, 1), iterations=1, checkpointing=True)
    with pytest.raises(RuntimeError, match="boom"):
        sample(wan, "a red disk", latents=z, steps=2, target=_target(wan, z), guidance=g, num_frames=DIT_FRAMES,
               height=SIZE, width=SIZE)
    assert _no_hooks(net)
    assert not net.is_gradient_checkpointing


def test_callback_sees_every_step_and_the_guided_losses(wan):
    z = _noise(wan)
    seen = []
    g = GuidanceConfig(steps=(1, 2), iterations=2, step_size=1.0, loss="per_position")
    out = sample(wan, "a red disk", latents=z, steps=3, guidance_scale=1.0, target=_target(wan, z), guidance=g,
                 num_frames=DIT_FRAMES, height=SIZE, width=SIZE, callback=seen.append)
    assert [s["i"] for s in seen] == [0, 1, 2]
    assert [len(s["losses"]) for s in seen] == [0, 2, 0]
    assert torch.equal(seen[-1]["latents"], out.latents)


# --- the latent time grid ----------------------------------------------------------------------------

def test_latent_frames_follow_the_vae_time_compression(wan, wan_4x, cogvideox):
    assert latent_frames(wan, 9) == 9
    assert latent_frames(wan_4x, 9) == 3 and latent_frames(wan_4x, 81) == 21
    assert latent_frames(cogvideox, 49) == 13


@pytest.mark.parametrize("fixture", ["wan", "wan_4x", "cogvideox"])
def test_a_frame_count_the_vae_cannot_take_is_a_one_line_error_naming_valid_ones(request, fixture):
    pipe = request.getfixturevalue(fixture)
    with pytest.raises(FramesError) as info:
        check_frames(pipe, 8)
    assert "\n" not in str(info.value) and "5, 9 or 13" in str(info.value)
    with pytest.raises(FramesError):
        encode_video(pipe, np.zeros((8, SIZE, SIZE, 3), np.uint8))


def test_each_latent_frame_covers_the_video_frames_the_time_grid_says(wan_4x):
    """Wan's causal 4x VAE: changing video frame k changes latent frames from ceil(k / 4) on, never
    before; the grid's frame for latent j (4j) is the last one latent j covers. (CogVideoX's VAE has
    the same frame counts but group norms over time, so every latent frame sees every video frame.)"""
    pipe = wan_4x
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (DIT_FRAMES, SIZE, SIZE, 3)).astype(np.uint8)
    base = encode_video(pipe, video)
    grid = latent_time_grid(pipe, DIT_FRAMES)
    assert grid == [0, 4, 8]
    for k in (0, 1, 4, 5, 8):
        changed = video.copy()
        changed[k] = 255 - changed[k]
        diff = (encode_video(pipe, changed) - base).abs().flatten(2).amax(-1)[0]  # (F',)
        first = int(np.ceil(k / 4))
        assert bool((diff[:first] == 0).all()), (k, diff)
        assert diff[first] > 0, (k, diff)
    for j, frame in enumerate(grid):
        assert j == int(np.ceil(frame / 4))  # latent j is the first latent frame video frame 4j reaches


# --- reference features for flow models --------------------------------------------------------------

def test_euler_inversion_of_the_flow_ode_returns_to_the_video(wan):
    """Euler inversion then the Euler sampler on the same schedule (no CFG) lands near the start:
    much nearer than the inverted noise, and nearer with more steps (the Euler error shrinks)."""
    from moft.method.inversion import invert

    z0 = encode_video(wan, np.random.default_rng(1).integers(0, 255, (DIT_FRAMES, SIZE, SIZE, 3)).astype(np.uint8))
    cond = _cond(wan, "")
    errors = []
    for steps in (4, 16):
        noise = invert(wan, z0, cond, num_steps=steps).latents[-1]
        back = sample(wan, "", latents=noise, steps=steps, guidance_scale=1.0, num_frames=DIT_FRAMES,
                      height=SIZE, width=SIZE).latents
        errors.append(float((back - z0).norm() / z0.norm()))
    assert errors[1] < 0.5 * errors[0] and errors[1] < 0.25  # measured 0.80 -> 0.18 (-> 0.06 at 50 steps)


def test_flow_noising_is_the_schedulers_own_forward_process(wan):
    from moft.method.inversion import noise_latents

    z0, eps = torch.randn(1, 9, 4, 16, 16), torch.randn(1, 9, 4, 16, 16)
    sched = wan.scheduler
    sched.set_timesteps(10)
    t = sched.timesteps[6]
    expected = sched.scale_noise(z0, t[None], eps)  # diffusers' flow-matching forward process
    torch.testing.assert_close(noise_latents(wan, z0, eps, t), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fixture", ["wan", "cogvideox"])
@pytest.mark.parametrize("mode", ["inversion", "noise"])
def test_reference_features_both_modes_give_site_features_at_the_nearest_step(request, fixture, mode):
    from moft.method.inversion import reference_features
    from moft.models.pipeline import nearest_step

    pipe = request.getfixturevalue(fixture)
    video = np.random.default_rng(2).integers(0, 255, (DIT_FRAMES, SIZE, SIZE, 3)).astype(np.uint8)
    ref = reference_features(pipe, video, timestep=200, num_steps=10, mode=mode)
    assert (ref.step, ref.timestep) == nearest_step(pipe, 10, 200, ascending=True)
    assert ref.features.shape[:2] == (1, latent_frames(pipe, DIT_FRAMES))
    assert ref.site == default_site(pipe.transformer)
    assert torch.isfinite(ref.features).all()


# --- options and variants ------------------------------------------------------------------------------

def test_shared_kv_is_refused_on_full_3d_attention_and_left_off_by_the_sampler(wan):
    from moft.method.shared_kv import SharedKV

    with pytest.raises(ValueError, match="full 3-D"):
        SharedKV(wan.transformer)
    before = {n: type(m.processor) for n, m in wan.transformer.named_modules() if hasattr(m, "processor")}
    seen = []
    z = _noise(wan)
    g = GuidanceConfig(steps=(0, 1), iterations=1, shared_kv=True, loss="per_position")
    sample(wan, "a red disk", latents=z, steps=2, target=_target(wan, z), guidance=g, num_frames=DIT_FRAMES,
           height=SIZE, width=SIZE,
           callback=lambda info: seen.append({n: type(m.processor) for n, m in wan.transformer.named_modules()
                                              if hasattr(m, "processor")}))
    assert seen[0] == before


@pytest.mark.parametrize("option", [{"checkpointing": True}, {"early_exit": False}])
def test_checkpointing_and_full_pass_give_the_same_guided_step(wan, option):
    z = _noise(wan)
    target = _target(wan, z)
    runs = []
    for g in (GuidanceConfig(steps=(0, 1), iterations=1, step_size=1.0, loss="per_position"),
              GuidanceConfig(steps=(0, 1), iterations=1, step_size=1.0, loss="per_position", **option)):
        runs.append(sample(wan, "a red disk", latents=z, steps=2, guidance_scale=1.0, target=target, guidance=g,
                           num_frames=DIT_FRAMES, height=SIZE, width=SIZE))
    torch.testing.assert_close(runs[0].latents, runs[1].latents, atol=1e-6, rtol=0)
    assert not wan.transformer.is_gradient_checkpointing


def test_bf16_autocast_guided_step_stays_close_to_fp32(wan):
    z = _noise(wan)
    target = _target(wan, z)
    state = {k: GuidanceState(target, GuidanceConfig(iterations=1, step_size=1.0, loss="per_position", autocast=k),
                              _cond(wan), None, default_site(wan.transformer), 1.0) for k in (None, "bfloat16")}
    moved = {k: guidance_step(wan.transformer, z.clone(), torch.tensor(700.0), 0, s) - z for k, s in state.items()}
    cos = torch.nn.functional.cosine_similarity(moved[None].flatten(), moved["bfloat16"].flatten(), dim=0)
    assert cos > 0.95
    assert abs(state[None].losses[0]["loss"] - state["bfloat16"].losses[0]["loss"]) < 0.05 * state[None].losses[0]["loss"]


def test_the_source_branch_of_a_multistep_solver_is_the_unguided_video(wan):
    """UniPC keeps a history: the source branch needs its own copy of the solver, so keep_source's video
    equals an unguided run from the same noise even though the guided branch diverged."""
    original = wan.scheduler
    wan.scheduler = _unipc(wan)
    try:
        z = _noise(wan, seed=4)
        g = GuidanceConfig(steps=(1, 2), iterations=2, step_size=2.0, loss="per_position")
        guided = sample(wan, "a red disk", latents=z, steps=4, guidance_scale=4.0, target=_target(wan, z),
                        guidance=g, keep_source=True, num_frames=DIT_FRAMES, height=SIZE, width=SIZE)
        plain = sample(wan, "a red disk", latents=z, steps=4, guidance_scale=4.0, num_frames=DIT_FRAMES,
                       height=SIZE, width=SIZE)
    finally:
        wan.scheduler = original
    np.testing.assert_allclose(guided.source_frames, plain.frames, atol=1e-5)
    assert np.abs(guided.frames - plain.frames).max() > 1e-3


@pytest.fixture(scope="module")
def wan22(wan):
    """Wan 2.2 A14B's layout: two experts switched at boundary_ratio (the second a differently seeded twin)."""
    from diffusers import WanPipeline, WanTransformer3DModel

    torch.manual_seed(1)
    second = WanTransformer3DModel.from_config(wan.transformer.config)
    pipe = WanPipeline(tokenizer=wan.tokenizer, text_encoder=wan.text_encoder, vae=wan.vae,
                       transformer=wan.transformer, transformer_2=second, scheduler=wan.scheduler, boundary_ratio=0.875)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_two_experts_unguided_equal_the_stock_pipeline(wan22):
    z = _noise(wan22, seed=2)
    ours = sample(wan22, "a red disk", latents=z, steps=4, guidance_scale=4.0, num_frames=DIT_FRAMES, height=SIZE,
                  width=SIZE)
    stock = wan22("a red disk", negative_prompt="", num_frames=DIT_FRAMES, height=SIZE, width=SIZE,
                  num_inference_steps=4, guidance_scale=4.0, latents=rearrange(z, "b f c h w -> b c f h w").clone(),
                  output_type="latent").frames
    torch.testing.assert_close(ours.latents, rearrange(stock, "b c f h w -> b f c h w"), atol=1e-5, rtol=0)


def test_guidance_captures_the_expert_that_runs_at_the_step(wan22):
    from moft.models.pipeline import denoiser_at

    sched = wan22.scheduler
    sched.set_timesteps(4)
    low = [i for i, t in enumerate(sched.timesteps) if denoiser_at(wan22, t) is wan22.transformer_2]
    assert low and low[0] > 0  # the low-noise expert takes the later steps
    fired = []
    handle = wan22.transformer_2.register_forward_pre_hook(lambda m, a: fired.append(torch.is_grad_enabled()))
    try:
        z = _noise(wan22)
        g = GuidanceConfig(steps=(low[0], low[0] + 1), iterations=1, loss="per_position")
        out = sample(wan22, "a red disk", latents=z, steps=4, guidance_scale=1.0, target=_target(wan22, z),
                     guidance=g, num_frames=DIT_FRAMES, height=SIZE, width=SIZE)
    finally:
        handle.remove()
    assert True in fired  # the loss forward (with grad) ran on transformer_2
    assert len(out.losses) == 1


@pytest.mark.parametrize("fixture", ["wan", "cogvideox"])
def test_capture_at_a_step_records_the_conditional_branch(request, fixture):
    """moft extract --prompt's features: the conditional pass at that step, under either CFG layout."""
    pipe = request.getfixturevalue(fixture)
    seen = []
    out = sample(pipe, "a red disk", latents=_noise(pipe), steps=3, guidance_scale=4.0, capture_at=1,
                 num_frames=DIT_FRAMES, height=SIZE, width=SIZE, callback=seen.append)
    net = pipe.transformer
    sched = pipe.scheduler
    sched.set_timesteps(3)
    with torch.no_grad(), capture(net) as cap:
        call_denoiser(net, seen[0]["latents"], sched.timesteps[1], _cond(pipe))
    torch.testing.assert_close(out.features[default_site(net)], cap.output, atol=1e-5, rtol=0)

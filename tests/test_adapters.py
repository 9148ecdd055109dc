"""The architecture table: which denoiser is which, the error for others, calling each one, layouts."""

from __future__ import annotations

import pytest
import torch

from moft.models.adapters import (
    ARCHITECTURES,
    ArchitectureError,
    architecture_of,
    call_denoiser,
    from_model_layout,
    to_model_layout,
)

from conftest import FRAMES, svd_cond, text_cond

pytestmark = pytest.mark.usefixtures("single_thread")

SUPPORTED = ("UNetMotionModel", "UNet3DConditionModel", "UNetSpatioTemporalConditionModel")


def _net_and_cond(request, name: str, batch: int = 1):
    """The denoiser of a tiny model and its conditioning for ``batch`` videos."""
    if name == "svd":
        return request.getfixturevalue("svd_unet"), svd_cond(batch=batch)
    pipe = request.getfixturevalue(name)
    cond = text_cond(pipe)
    return pipe.unet, {k: v.expand(batch, *v.shape[1:]) for k, v in cond.items()}


@pytest.mark.parametrize("fixture, expected", [("animatediff", "animatediff"), ("modelscope", "modelscope"),
                                               ("svd_unet", "svd")])
def test_architecture_of_names_each_tiny_denoiser(request, fixture, expected):
    model = request.getfixturevalue(fixture)
    net = getattr(model, "unet", model)
    assert architecture_of(net).name == expected


def test_architecture_of_covers_a_subclass_of_a_supported_model():
    from diffusers import UNetMotionModel

    class MyMotionUNet(UNetMotionModel):
        pass

    net = MyMotionUNet.__new__(MyMotionUNet)  # the class is all architecture_of looks at
    assert architecture_of(net).name == "animatediff"


def test_unknown_module_raises_architecture_error():
    with pytest.raises(ArchitectureError):
        architecture_of(torch.nn.Linear(2, 2))


def test_architecture_error_is_one_line_listing_supported_classes():
    with pytest.raises(ArchitectureError) as info:
        architecture_of(torch.nn.Linear(2, 2))
    message = str(info.value)
    assert "\n" not in message
    assert "Linear" in message
    for cls in SUPPORTED:
        assert cls in message


def test_every_unet_entry_defaults_to_up_blocks_1():
    unets = [a for a in ARCHITECTURES.values() if a.default_depth is None]
    assert {a.name for a in unets} == {"animatediff", "modelscope", "svd"}
    assert {a.default_site for a in unets} == {"up_blocks.1"}


@pytest.mark.parametrize("name", ["animatediff", "modelscope", "svd"])
def test_call_denoiser_returns_canonical_b_f_c_h_w(request, name):
    net, cond = _net_and_cond(request, name, batch=2)
    z = torch.randn(2, FRAMES, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = call_denoiser(net, z, 500, cond)
    assert out.shape == (2, FRAMES, 4, 16, 16)


@pytest.mark.parametrize("name", ["animatediff", "modelscope", "svd"])
def test_call_denoiser_keeps_videos_of_a_batch_apart(request, name):
    """Video 0's output must not depend on video 1 (a b/f mix-up in a layout would mix them)."""
    net, cond = _net_and_cond(request, name, batch=2)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, FRAMES, 4, 16, 16, generator=g)
    z2 = z.clone()
    z2[1] = torch.randn(FRAMES, 4, 16, 16, generator=g)
    with torch.no_grad():
        a = call_denoiser(net, z, 500, cond)
        b = call_denoiser(net, z2, 500, cond)
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[1], b[1], atol=1e-4)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_model_layout_round_trip_is_identity(name):
    arch = ARCHITECTURES[name]
    z = torch.randn(2, 3, 4, 5, 6)
    sample = to_model_layout(arch, z)
    assert torch.equal(from_model_layout(arch, sample), z)


@pytest.mark.parametrize("name, shape", [("animatediff", (2, 4, 3, 5, 6)), ("modelscope", (2, 4, 3, 5, 6)),
                                         ("svd", (2, 3, 4, 5, 6)), ("wan", (2, 4, 3, 5, 6)),
                                         ("cogvideox", (2, 3, 4, 5, 6))])
def test_to_model_layout_puts_axes_where_the_denoiser_wants_them(name, shape):
    z = torch.randn(2, 3, 4, 5, 6)  # (B, F, C, H, W)
    assert to_model_layout(ARCHITECTURES[name], z).shape == shape

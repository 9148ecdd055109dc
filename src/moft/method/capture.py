"""Capture intermediate features of a video denoiser, as a context manager with guaranteed cleanup.

Example:
    >>> import torch
    >>> from moft.models.adapters import call_denoiser
    >>> from moft.method.capture import capture
    >>> from moft.models.tiny import build_tiny_wan
    >>> net = build_tiny_wan().transformer
    >>> z, emb = torch.randn(1, 9, 4, 16, 16), torch.randn(1, 8, 64)   # latents (B, F, C, h, w), text
    >>> with torch.no_grad(), capture(net, stop=True) as cap:
    ...     out = call_denoiser(net, z, 500, {"encoder_hidden_states": emb})    # stops after blocks.3
    >>> cap.features["blocks.3"].shape                                     # (B, F, C, H', W')
    torch.Size([1, 9, 128, 8, 8])

``detach=False`` keeps the autograd graph (guidance differentiates through it); ``stop=True`` ends
the forward pass once every site has fired (the ``StopForward`` it raises is swallowed on exit,
as in baukit); ``select="cond"`` keeps the conditional half of a classifier-free-guidance batch
(diffusers orders CFG batches ``[uncond, cond]``). Every hook is removed on exit, exceptions
included, so the model afterwards is exactly the model before.
"""

from __future__ import annotations

import math
import re
from contextlib import ContextDecorator

import torch
from einops import rearrange

from ..models.adapters import architecture_of, default_site


class StopForward(Exception):
    """Raised inside a hook to end a forward pass early; swallowed by ``capture``."""


class CaptureError(ValueError):
    """A capture site that does not exist, or an output whose layout cannot be read."""


def _first_tensor(output) -> torch.Tensor:
    if torch.is_tensor(output):
        return output
    if isinstance(output, (tuple, list)) and output and torch.is_tensor(output[0]):
        return output[0]
    for key in ("sample", "last_hidden_state"):
        if torch.is_tensor(getattr(output, key, None)):
            return getattr(output, key)
    raise CaptureError(f"cannot find a tensor in a module output of type {type(output).__name__}")


def to_canonical(x: torch.Tensor, batch: int, frames: int, height: int, width: int,
                 layout: str | None = None) -> torch.Tensor:
    """Turn a module output into ``(B, F, C, H', W')``.

    Args:
        x: the module's output tensor.
        batch, frames: of the forward pass.
        height, width: of the latents (sets the aspect ratio of token sequences).
        layout: einops axes of ``x`` (e.g. ``"(b h w) f c"``); inferred from the shape when None.
    """
    if layout is None:
        if x.ndim == 4 and x.shape[0] == batch * frames:
            layout = "(b f) c h w"
        elif x.ndim == 5:
            layout = "b c f h w" if x.shape[2] == frames else "b f c h w"
        elif x.ndim == 3 and x.shape[0] == batch * frames:
            layout = "(b f) (h w) c"
        elif x.ndim == 3 and x.shape[1] == frames:
            layout = "(b h w) f c"
        elif x.ndim == 3 and x.shape[0] == batch and x.shape[1] % frames == 0:
            layout = "b (f h w) c"  # DiT tokens, frame-major: f*H'W' + y*W' + x
        else:
            raise CaptureError(f"cannot infer the layout of a {tuple(x.shape)} output; pass layout=")
    sizes = {"b": batch, "f": frames}
    if "h w)" in layout:
        if layout.startswith("(b h w)"):
            tokens = x.shape[0] // batch
        elif "(f h w)" in layout:
            tokens = x.shape[1] // frames  # per frame
        else:
            tokens = x.shape[1]
        h = round(math.sqrt(tokens * height / width))
        if h == 0 or tokens % h:
            raise CaptureError(f"{tokens} tokens do not form a grid with aspect {height}x{width}")
        sizes["h"] = h
    try:
        return rearrange(x, f"{layout} -> b f c h w", **{k: v for k, v in sizes.items() if k in layout})
    except Exception as exc:  # einops' error names the axes; ours names the tensor
        raise CaptureError(f"layout {layout!r} does not fit a {tuple(x.shape)} output") from exc


class capture(ContextDecorator):  # noqa: N801 - used like a function, as baukit's Trace
    """Record the outputs of named modules of a video denoiser.

    Example:
        >>> with capture(pipe.unet, ["up_blocks.1", "up_blocks.1.motion_modules.0"]) as cap:  # doctest: +SKIP
        ...     pipe.unet(sample, t, encoder_hidden_states=emb)
        >>> {k: v.shape for k, v in cap.features.items()}   # each (B, F, C, H, W)  # doctest: +SKIP

    Args:
        model: the denoiser (``pipe.unet``); must be an architecture in ``ARCHITECTURES``.
        sites: module path(s); default: ``adapters.default_site(model)`` (``up_blocks.1`` for
            U-Nets, a mid-depth block for DiTs).
        detach: store detached tensors (extraction) or keep the graph (guidance).
        stop: raise ``StopForward`` after the last site fires, skipping the rest of the network.
        select: ``None`` (whole batch), ``"cond"`` / ``"uncond"`` (half of a CFG batch), or a slice.
        layout: einops axes of the sites' outputs; inferred when None.

    Attributes:
        features: ``{site: (B, F, C, H, W) tensor}`` after the forward pass.
    """

    def __init__(self, model: torch.nn.Module, sites: str | list[str] | None = None, *, detach: bool = True,
                 stop: bool = False, select: str | slice | None = None, layout: str | None = None):
        self.arch = architecture_of(model)
        self.model = model
        self.sites = [sites] if isinstance(sites, str) else list(sites or [default_site(model)])
        self.modules = {}
        for site in self.sites:
            try:
                self.modules[site] = model.get_submodule(site)
            except AttributeError:
                near = [n for n, _ in model.named_modules() if n.startswith(site.rsplit(".", 1)[0])][:5]
                raise CaptureError(f"no module {site!r} in {type(model).__name__}"
                                   + (f" (e.g. {', '.join(near)})" if near else "")) from None
        if select not in (None, "cond", "uncond") and not isinstance(select, slice):
            raise CaptureError(f"select must be None, 'cond', 'uncond' or a slice, got {select!r}")
        self.detach, self.stop, self.select, self.layout = detach, stop, select, layout
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list = []
        self._shape: tuple[int, int, int, int] | None = None

    def _pre_hook(self, module, args, kwargs):
        sample = args[0] if args else kwargs[self.arch.sample_arg]
        axes = self.arch.sample_layout.split()
        dims = dict(zip(axes, sample.shape))
        self._shape = (dims["b"], dims["f"], dims["h"], dims["w"])

    def _hook(self, site: str):
        def hook(module, args, output):
            b, f, h, w = self._shape
            x = to_canonical(_first_tensor(output), b, f, h, w, self.layout)  # (B, F, C, H', W')
            if self.select is not None:
                half = b // 2
                x = {"cond": x[half:], "uncond": x[:half]}.get(self.select, None) if isinstance(
                    self.select, str) else x[self.select]
            self.features[site] = x.detach() if self.detach else x
            if self.stop and len(self.features) == len(self.sites):
                raise StopForward()
        return hook

    def __enter__(self) -> "capture":
        self.features = {}
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            for site, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._hook(site)))
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._remove()
        return exc_type is not None and issubclass(exc_type, StopForward)

    @property
    def output(self) -> torch.Tensor:
        """The first site's features ``(B, F, C, H, W)``."""
        if self.sites[0] not in self.features:
            raise CaptureError(f"site {self.sites[0]!r} did not run")
        return self.features[self.sites[0]]


def capture_sites(model: torch.nn.Module) -> dict[str, list[str]]:
    """Named capture sites for ``moft info``: the default, every block output and temporal layers."""
    arch = architecture_of(model)
    names = [n for n, _ in model.named_modules()]
    return {
        "default": [default_site(model)],
        "blocks": [n for n in names if re.fullmatch(arch.blocks, n)],
        "temporal": [n for n in names if arch.temporal_modules and re.search(arch.temporal_modules, n)],
    }

"""Shared keys/values of spatial self-attention from an unguided branch (paper Supp. §8.2).

Example:
    >>> import torch
    >>> from moft.method.shared_kv import SharedKV
    >>> with torch.no_grad(), SharedKV(pipe.unet) as kv:
    ...     kv.mode = "record"; _ = call_denoiser(pipe.unet, torch.cat([z, z]), t, cfg_cond)  # source, CFG batch
    ...     kv.mode = "share"; out = call_denoiser(pipe.unet, z, t, cond)  # K/V from the source's cond half
    >>> # the source here is the guided branch itself, so sharing is plain self-attention:
    >>> torch.allclose(out, call_denoiser(pipe.unet, z, t, cond), atol=1e-5)
    True
    >>> any(type(m.processor).__name__ == "_SharedKVProcessor"   # every original processor is back
    ...     for m in pipe.unet.modules() if hasattr(m, "processor"))
    False

The guided branch keeps its own queries; keys and values come from the source branch's hidden
states at the same layer (official code: up blocks 1-3 only, only in the loss forward). This is
done with attention processors (diffusers' public extension point): no forward is replaced.

Diffusion transformers (Wan, CogVideoX) have no spatial-only self-attention: every token attends
to every frame and position at once, so "the keys/values of the same frame's spatial attention"
does not exist there; the table marks them (``spatial_self_attention`` None), ``SharedKV`` refuses
them, and the sampler leaves shared K/V off for them.
"""

from __future__ import annotations

import re

import torch

from ..models.adapters import architecture_of


class _SharedKVProcessor:
    """Wraps a module's own processor; records or substitutes the key/value source."""

    def __init__(self, owner: "SharedKV", name: str, base):
        self.owner, self.name, self.base = owner, name, base

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        mode = self.owner.mode
        if mode == "record":
            self.owner.store[self.name] = hidden_states.detach()
        elif mode == "share" and encoder_hidden_states is None:
            source = self.owner.store[self.name]
            # a cond-only guided pass takes the cond half: CFG batches are [uncond, cond]
            encoder_hidden_states = source[-hidden_states.shape[0]:].to(hidden_states.dtype)
        return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)


class SharedKV:
    """Context manager installing record/share processors on spatial self-attention modules.

    Args:
        model: the denoiser.
        pattern: regex of module names (default: the architecture's ``spatial_self_attention``,
            i.e. up blocks 1-3 as in the official code).

    Attributes:
        mode: ``"off"`` (pass-through), ``"record"`` or ``"share"``.
        store: ``{module name: (N, T, C) hidden states}`` recorded from the source branch.
    """

    def __init__(self, model: torch.nn.Module, pattern: str | None = None):
        self.model = model
        self.pattern = pattern or architecture_of(model).spatial_self_attention
        if self.pattern is None:
            raise ValueError(f"{type(model).__name__} attends over all frames and positions at once (full 3-D "
                             "attention): it has no spatial self-attention whose keys/values could be shared")
        self.names = [n for n, m in model.named_modules() if re.search(self.pattern, n) and hasattr(m, "processor")]
        self.mode = "off"
        self.store: dict[str, torch.Tensor] = {}
        self._saved: dict[str, object] = {}

    def __enter__(self) -> "SharedKV":
        try:
            for name in self.names:
                module = self.model.get_submodule(name)
                self._saved[name] = module.processor
                module.set_processor(_SharedKVProcessor(self, name, module.processor))
        except BaseException:
            self._restore()
            raise
        return self

    def _restore(self):
        for name, proc in self._saved.items():
            self.model.get_submodule(name).set_processor(proc)
        self._saved.clear()
        self.store.clear()

    def __exit__(self, *exc) -> bool:
        self._restore()
        return False

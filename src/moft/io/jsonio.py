"""Strict JSON (RFC 8259: no NaN or Infinity) and reports written as JSON plus Markdown.

A non-finite number becomes ``null`` and the object that held it says why in ``null_because``, so a
reader in any language parses every file moft writes.

Example:
    >>> print(strict_json({"loss": float("nan")}, indent=None))
    {"loss": null, "null_because": {"loss": "nan"}}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .outputs import atomic_write_text

__all__ = ["strict_json", "write_report"]


def _finite_or_null(value, path: str, nulls: dict) -> object:
    """``value`` with every non-finite float replaced by None; ``nulls[path] = why`` for each."""
    if isinstance(value, dict):
        out, here = {}, {}
        for key, item in value.items():
            out[key] = _finite_or_null(item, str(key), here)
        if here:
            out["null_because"] = dict(out.get("null_because") or {}, **here)
        return out
    if isinstance(value, (list, tuple)):
        items, here = [], {}
        for index, item in enumerate(value):
            items.append(_finite_or_null(item, f"{path}[{index}]", here))
        nulls.update(here)
        return items
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind in "biuf":
        return _finite_or_null(np.asarray(value).tolist(), path, nulls)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # a torch tensor
        return _finite_or_null(value.tolist(), path, nulls)
    if isinstance(value, float) and not np.isfinite(value):
        nulls[path] = "nan" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
        return None
    return value


def strict_json(data, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON text (RFC 8259): every NaN/Infinity becomes ``null`` and the dict that held it gets
    ``"null_because": {"field": "nan" | "+inf" | "-inf"}``; numpy and torch values become numbers.

    Example:
        >>> print(strict_json({"loss": float("inf"), "psnr": 31.5}, indent=None))
        {"loss": null, "psnr": 31.5, "null_because": {"loss": "+inf"}}

    Raises:
        ValueError: if a non-finite float survives (``allow_nan=False``): a bug here, never a silent NaN.
    """
    clean = _finite_or_null(data, "", {})
    return json.dumps(clean, indent=indent, allow_nan=False, sort_keys=sort_keys) + ("\n" if indent is not None else "")



def write_report(path: str | Path, report: dict, markdown: str) -> Path:
    """Write a JSON report and its Markdown rendering beside it (``.md``), each atomically.

    Example:
        >>> write_report("docs/results/quality.json", report, markdown(report))   # + quality.md  # doctest: +SKIP

    Args:
        path: The JSON file; parent folders are created.
        report: JSON-ready data; NaN/Infinity are written as ``null`` (see ``strict_json``).
        markdown: The report as Markdown.

    Returns:
        The JSON path.
    """
    path = Path(path)
    atomic_write_text(path, strict_json(report))
    atomic_write_text(path.with_suffix(".md"), markdown)
    return path

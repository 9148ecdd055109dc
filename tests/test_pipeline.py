"""moft.models.pipeline: the facts every module reads (sizes, schedules, folders) and an import graph without cycles."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import moft.models.pipeline as facts
from moft.models.tiny import build_tiny_animatediff
from moft.models.loading import ModelError

SRC = Path(facts.__file__).parents[1]  # src/moft
LAYERS = ("io", "models", "method", "eval", "front")  # the data flow: a layer imports only layers before it


def _module(path: Path) -> str:
    """``models.pipeline`` for ``src/moft/models/pipeline.py``; ``models.tiny`` for its ``__init__.py``."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """moft modules a module imports (relative imports resolved), at module level or inside functions."""
    package = _module(path).split(".") if path.name == "__init__.py" else _module(path).split(".")[:-1]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            deps |= {".".join(base + n.split(".")) for n in names}
    return {d for d in deps if d} - {_module(path)}


def _graph() -> dict[str, set[str]]:
    tops = (SRC / "__init__.py", SRC / "__main__.py")  # the package's front matter, above the layers
    return {_module(p): _imports(p) for p in SRC.rglob("*.py") if "shipped" not in p.parts and p not in tops}


def test_the_package_import_graph_has_no_cycle():
    graph = _graph()
    done, active = set(), []

    def visit(node):
        assert node not in active, f"import cycle: {' -> '.join(active[active.index(node):] + [node])}"
        if node in done:
            return
        active.append(node)
        for dep in graph.get(node, ()):
            visit(dep)
        active.pop()
        done.add(node)

    for node in graph:
        visit(node)
    assert "models.loading" not in graph["models.pipeline"] and "method.channels" not in graph["models.pipeline"]


def test_the_layers_import_only_the_layers_before_them():
    graph = _graph()
    for module, deps in graph.items():
        layer = LAYERS.index(module.split(".")[0])
        later = sorted(d for d in deps if d.split(".")[0] in LAYERS and LAYERS.index(d.split(".")[0]) > layer)
        assert not later, f"{module} imports a later layer: {later}"


def test_nearest_step_is_the_official_inversion_step():
    # DDIM, 25 trailing steps of 1000: ascending timesteps 39, 79, ..., 199 (index 4) and 239 (index 5)
    pipe = build_tiny_animatediff()
    assert facts.nearest_step(pipe, 25, 200, ascending=True) == (4, 199)
    assert facts.nearest_step(pipe, 25, 200, ascending=False) == (20, 199)


def test_default_video_size_prefers_the_folders_moft_json(tmp_path):
    pipe = build_tiny_animatediff()
    assert facts.default_video_size(pipe) == (8, 32, 32)  # tiny U-Net: 16 latents x 2, 8 frames
    pipe.save_pretrained(tmp_path)
    (tmp_path / "moft.json").write_text(json.dumps({"frames": 9, "height": 48, "width": 64}))
    pipe.register_to_config(_name_or_path=str(tmp_path))
    assert facts.default_video_size(pipe) == (9, 48, 64)


def test_any_shipped_folder_is_a_model_name(tmp_path, monkeypatch):
    monkeypatch.setattr(facts, "SHIPPED_DIR", tmp_path)
    (tmp_path / "moft-tiny-wan").mkdir()
    (tmp_path / "moft-tiny-wan" / "model_index.json").write_text("{}")
    assert facts.resolve_model("moft-tiny-wan") == str(tmp_path / "moft-tiny-wan")
    with pytest.raises(ModelError, match="shipped model is missing"):
        facts.resolve_model(None)  # moft-tiny is not in this shipped folder
    (tmp_path / "half").mkdir()
    with pytest.raises(ModelError, match="missing"):
        facts.resolve_model("half")

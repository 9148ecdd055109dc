"""moft.pipeline: the facts every module reads (sizes, schedules, folders) and an import graph without cycles."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import moft.pipeline as facts
from moft.tiny import build_tiny_animatediff
from moft.models import ModelError

SRC = Path(facts.__file__).parent


def _imports(path: Path) -> set[str]:
    """Sibling modules a module imports, at module level or inside functions."""
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
    return deps - {path.stem}


def test_the_package_import_graph_has_no_cycle():
    graph = {p.stem: _imports(p) for p in SRC.glob("*.py")}
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
    assert "models" not in graph["pipeline"] and "channels" not in graph["pipeline"]


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

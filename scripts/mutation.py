"""Mutation testing of moft's method modules: does the suite notice when the method is broken?

Usage:
    python scripts/mutation.py features channels --sample 20 --seed 0 --timeout 300
    python scripts/mutation.py --named          # the four breaks named in issue 14
    python scripts/mutation.py drag --list      # the mutants, without running anything

Each mutant is one small change to one module's AST (operators below). The package is copied to a
scratch folder, the mutated module is written there (``ast.unparse``), and only the test files that
mirror the module (``TESTS``) run against it, with ``PYTHONPATH`` pointing at the copy, one thread
(``OMP_NUM_THREADS=1``), ``-x`` and a per-mutant timeout. A mutant is *killed* when the tests fail or
time out, *survives* when they pass. ``--sample N`` draws N mutants per module with ``--seed``.

Operators: comparison flips (``<`` <-> ``>=``, ``==`` <-> ``!=``, ``is`` <-> ``is not``, ``in`` <->
``not in``), arithmetic swaps (``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``, ``**`` -> ``*``),
constant tweaks (ints ``n -> n + 1``, floats ``x -> 2x``, ``True`` <-> ``False``), index ``0`` <->
``-1``, ``and`` <-> ``or``, dropped statements (an assignment or call becomes ``pass``) and dropped
return values (``return x`` -> ``return None``). Docstrings are left alone.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "moft"
PLACES = {"metrics": "eval", **{m: "method" for m in ("capture", "features", "channels", "targets", "sampler", "shared_kv",
                                                     "inversion", "drag")}}  # module -> its layer folder


def module_path(module: str, package=SRC):
    """Where a module's source lies in ``package`` (``src/moft`` or the scratch copy's ``moft``)."""
    return package / PLACES[module] / f"{module}.py"

# module -> the test files that mirror it (run per mutant)
TESTS = {
    "capture": ["tests/test_capture.py"],
    "features": ["tests/test_features.py"],
    "channels": ["tests/test_channels.py", "tests/test_pinned.py"],
    "targets": ["tests/test_targets.py"],
    "sampler": ["tests/test_sampler.py"],
    "shared_kv": ["tests/test_shared_kv.py"],
    "inversion": ["tests/test_inversion.py"],
    "drag": ["tests/test_drag.py"],
    "metrics": ["tests/test_metrics.py", "tests/test_pinned.py"],
}

# issue 14's named breaks: (module, text, replacement, the test file that must catch it)
NAMED = {
    "response replaced by zeros": ("channels", "sol.T.contiguous(), r2, baseline, meta)",
                                   "torch.zeros_like(sol.T), r2, baseline, meta)", "tests/test_pinned.py"),
    "rank by the last principal component": ("channels", "pca.components_[0]", "pca.components_[-1]",
                                             "tests/test_pinned.py"),
    "shared K/V from the unconditional half": ("shared_kv", "source[-hidden_states.shape[0]:]",
                                               "source[:hidden_states.shape[0]]", "tests/test_shared_kv.py"),
    "3x3 SSIM window": ("metrics", "SSIM_WINDOW, SSIM_SIGMA = 11, 1.5", "SSIM_WINDOW, SSIM_SIGMA = 3, 1.5",
                        "tests/test_pinned.py"),
}

CMP_FLIP = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
            ast.Pow: ast.Mult}


@dataclass
class Mutant:
    module: str
    index: int  # position in the module's mutant list
    line: int
    kind: str
    text: str  # the source line, for the report


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                ids.add(id(first))
    return ids


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every (node, kind) that can be mutated, in a fixed walk order."""
    skip = _docstring_nodes(tree)
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sites += [(node, f"compare {i}") for i, op in enumerate(node.ops) if type(op) in CMP_FLIP]
        elif isinstance(node, ast.BinOp) and type(node.op) in BIN_SWAP:
            sites.append((node, "binop"))
        elif isinstance(node, ast.AugAssign) and type(node.op) in BIN_SWAP:
            sites.append((node, "augassign"))
        elif isinstance(node, ast.BoolOp):
            sites.append((node, "boolop"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            sites.append((node, "constant"))
        elif isinstance(node, ast.Subscript) and _index_value(node.slice) in (0, -1):
            sites.append((node, "index"))
        elif isinstance(node, ast.Return) and node.value is not None:
            sites.append((node, "return"))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr)) and id(node) not in skip:
            sites.append((node, "drop"))
    return sites


def _index_value(s) -> int | None:
    if isinstance(s, ast.Constant) and type(s.value) is int:
        return s.value
    if isinstance(s, ast.UnaryOp) and isinstance(s.op, ast.USub) and isinstance(s.operand, ast.Constant) \
            and type(s.operand.value) is int:
        return -s.operand.value
    return None


def _apply(node: ast.AST, kind: str) -> ast.AST | None:
    """Mutate ``node`` in place (or return a replacement statement); describes nothing, returns the new node."""
    if kind.startswith("compare"):
        i = int(kind.split()[1])
        node.ops[i] = CMP_FLIP[type(node.ops[i])]()
    elif kind == "binop" or kind == "augassign":
        node.op = BIN_SWAP[type(node.op)]()
    elif kind == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "constant":
        v = node.value
        node.value = (not v) if isinstance(v, bool) else (v + 1 if isinstance(v, int) else (v * 2 if v else 1.0))
    elif kind == "index":
        node.slice = ast.Constant(-1 if _index_value(node.slice) == 0 else 0)
    elif kind == "return":
        node.value = ast.Constant(None)
    elif kind == "drop":
        return ast.copy_location(ast.Pass(), node)
    return node


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, new: ast.AST):
        self.target, self.new = target, new

    def generic_visit(self, node):
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                setattr(node, field, [self.new if v is self.target else v for v in value])
        return super().generic_visit(node)


def mutants(module: str) -> tuple[str, list[Mutant]]:
    source = module_path(module).read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    out = [Mutant(module, i, getattr(n, "lineno", 0), k, lines[getattr(n, "lineno", 1) - 1].strip())
           for i, (n, k) in enumerate(_sites(tree))]
    return source, out


def mutated_source(source: str, index: int) -> str:
    tree = ast.parse(source)
    node, kind = _sites(tree)[index]
    new = _apply(node, kind)
    if new is not node:
        _Replace(node, new).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def run_tests(pkg_root: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """``("passed" | "failed" | "timeout", seconds)`` of the test files against the package at pkg_root."""
    env = dict(os.environ, PYTHONPATH=f"{pkg_root}", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0
    return ("passed" if proc.returncode == 0 else "failed"), time.perf_counter() - t0


def scratch_copy() -> Path:
    root = Path(tempfile.mkdtemp(prefix="moft-mutation-"))
    shutil.copytree(SRC, root / "moft", ignore=shutil.ignore_patterns("__pycache__", "shipped"))
    (root / "moft" / "shipped").symlink_to(SRC / "shipped")
    return root


def summarize(logs: list[Path]) -> None:
    """Per module: distinct mutants run, killed, kill rate, and the survivors, from ``--log`` files."""
    last: dict[tuple[str, int], dict] = {}
    for log in logs:
        for line in log.read_text().splitlines():
            row = json.loads(line)
            last[(row["module"], row["index"])] = row
    print("| module | mutants run | killed | kill rate | survivors |\n|---|---|---|---|---|")
    for module in TESTS:
        rows = [r for (m, _), r in sorted(last.items()) if m == module]
        if rows:
            killed = sum(r["verdict"] != "passed" for r in rows)
            alive = ", ".join(f"#{r['index']} (line {r['line']}, {r['kind']})" for r in rows if r["verdict"] == "passed")
            print(f"| {module} | {len(rows)} | {killed} | {killed / len(rows):.0%} | {alive or '-'} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("modules", nargs="*", help=f"modules to mutate (default: all of {', '.join(TESTS)})")
    ap.add_argument("--sample", type=int, default=0, help="mutants per module (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=0, help="seconds per mutant (default: 3x the clean run + 30)")
    ap.add_argument("--index", type=lambda v: [int(i) for i in v.split(",")], default=None,
                    help="run only these mutant numbers (comma-separated; one module), e.g. to rerun survivors")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--named", action="store_true", help="run issue 14's named breaks instead")
    ap.add_argument("--log", type=Path, help="append one JSON line per mutant here")
    ap.add_argument("--summary", type=Path, nargs="+", help="print the kill rates of these logs (the last verdict "
                    "of each mutant counts, so a rerun after new tests replaces the earlier one) and stop")
    args = ap.parse_args(argv)
    if args.summary:
        summarize(args.summary)
        return 0
    modules = args.modules or list(TESTS)
    unknown = [m for m in modules if m not in TESTS]
    if unknown:
        ap.error(f"unknown module(s) {unknown}; choose from {list(TESTS)}")

    root = scratch_copy()
    try:
        if args.named:
            for name, (module, old, new, test) in NAMED.items():
                source = module_path(module).read_text()
                assert source.count(old) == 1, f"{name}: {old!r} not found once in {module}.py"
                module_path(module, root / "moft").write_text(source.replace(old, new))
                verdict, secs = run_tests(root, [test], args.timeout or 600)
                module_path(module, root / "moft").write_text(source)
                print(f"{name:42s} {module:10s} {test}: {'killed' if verdict != 'passed' else 'SURVIVED'}"
                      f" ({verdict}, {secs:.0f} s)", flush=True)
            return 0
        summary = []
        for module in modules:
            source, muts = mutants(module)
            rng = random.Random(f"{args.seed}:{module}")
            chosen = sorted(rng.sample(muts, min(args.sample, len(muts))), key=lambda m: m.index) if args.sample else muts
            if args.index is not None:
                chosen = [m for m in muts if m.index in args.index]
            tests = [t for t in TESTS[module] if (ROOT / t).is_file()]
            if args.list:
                for m in chosen:
                    print(f"{module}:{m.line} #{m.index} {m.kind}: {m.text}")
                continue
            verdict, clean = run_tests(root, tests, 1800)
            if verdict != "passed":
                print(f"{module}: the tests fail without a mutant ({verdict}); skipped", flush=True)
                continue
            timeout = args.timeout or 3 * clean + 30
            print(f"== {module}: {len(chosen)} of {len(muts)} mutants, tests {' '.join(tests)} "
                  f"(clean run {clean:.0f} s, timeout {timeout:.0f} s)", flush=True)
            killed, survivors = 0, []
            target = module_path(module, root / "moft")
            for m in chosen:
                try:
                    target.write_text(mutated_source(source, m.index))
                    verdict, secs = run_tests(root, tests, timeout)
                finally:
                    target.write_text(source)
                dead = verdict != "passed"
                killed += dead
                if not dead:
                    survivors.append(m)
                print(f"  {'killed  ' if dead else 'SURVIVED'} {module}:{m.line} #{m.index} {m.kind:10s} "
                      f"({verdict}, {secs:.0f} s): {m.text}", flush=True)
                if args.log:
                    with args.log.open("a") as fh:
                        fh.write(json.dumps({"module": module, "index": m.index, "line": m.line, "kind": m.kind,
                                             "text": m.text, "verdict": verdict, "seconds": round(secs, 1),
                                             "seed": args.seed, "sample": args.sample}) + "\n")
            summary.append((module, len(muts), len(chosen), killed))
        if summary:
            print("\n| module | mutants | run | killed | kill rate |\n|---|---|---|---|---|")
            for module, total, run, killed in summary:
                print(f"| {module} | {total} | {run} | {killed} | {killed / max(run, 1):.0%} |")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

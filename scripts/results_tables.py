"""Copy the measured tables (docs/results/*.md, written by `moft evaluate`, scripts/benchmark.py and
scripts/model_quality.py) into the README and the docs pages between markers, so they show exactly
what was run.

Blocks (file: block): README.md: ``<!-- headline -->`` (the tables a user compares against), ``<!-- organisms -->``
(the two shipped organisms side by side, from scripts/organism_tables.py);
docs/moft-tiny.md: ``<!-- quality -->`` (the shipped model's bars), ``<!-- channel-ranking -->``;
docs/control.md: ``<!-- target-specificity -->`` (which targets carry direction), ``<!-- control-goals -->``
(issue 17's goal table, written by scripts/control_goals.py, and the levers' tuning rows); docs/results.md:
``<!-- results -->`` (the paper's tables and the benchmarks), ``<!-- organism-suites -->`` (each suite on both organisms);
docs/moft-tiny-wan.md: ``<!-- wan-quality -->``, ``<!-- wan-tuning -->``, ``<!-- wan-control-goals -->`` (the DiT
organism's bars, control tuning and issue 17's goal table on it).

Usage:
    python scripts/results_tables.py
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = {  # block: (file, the docs/results tables it shows)
    "headline": ("README.md", ["table1_synthesis", "benchmark"]),
    "organisms": ("README.md", ["organisms_summary"]),
    "organism-suites": ("docs/results.md", ["organisms"]),
    "wan-quality": ("docs/moft-tiny-wan.md", ["moft-tiny-wan/model_quality"]),
    "wan-tuning": ("docs/moft-tiny-wan.md", ["moft-tiny-wan/tune_control"]),
    "wan-control-goals": ("docs/moft-tiny-wan.md", ["moft-tiny-wan/control_goals_table"]),
    "quality": ("docs/moft-tiny.md", ["model_quality"]),
    "channel-ranking": ("docs/moft-tiny.md", ["channel_ranking"]),
    "target-specificity": ("docs/control.md", ["target_specificity"]),
    "control-goals": ("docs/control.md", ["control_goals_table", "tune_levers"]),
    "results": ("docs/results.md", ["tune_control", "tune_levers", "control_goals", "control_two_objects", "table1_synthesis", "table1_reference", "camera_pan", "zoom", "zoom_proxy", "glitch", "two_objects", "table4_channels",
                "ablations", "prompt_no_motion", "benchmark", "benchmark_full"]),
}


def fill(text: str, block: str, names: list[str]) -> tuple[str, int]:
    """Replace what lies between ``<!-- block -->`` and ``<!-- /block -->`` with the named tables."""
    parts = []
    for name in names:
        md = ROOT / "docs" / "results" / f"{name}.md"
        if md.exists():
            parts.append(f"<!-- from docs/results/{name}.md -->\n" + md.read_text().strip() + "\n")
    head, rest = text.split(f"<!-- {block} -->", 1)
    _, tail = rest.split(f"<!-- /{block} -->", 1)
    return head + f"<!-- {block} -->\n" + "\n".join(parts) + f"<!-- /{block} -->" + tail, len(parts)


def main():
    for block, (name, tables) in BLOCKS.items():
        path = ROOT / name
        text, n = fill(path.read_text(), block, tables)
        path.write_text(text)
        print(f"{name} {block}: {n} tables")


if __name__ == "__main__":
    main()

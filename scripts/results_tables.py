"""Copy the measured tables (docs/results/*.md, written by `moft evaluate`, scripts/benchmark.py and
scripts/model_quality.py) into README.md between markers, so the README shows exactly what was run.

Blocks: ``<!-- quality -->`` (the shipped model's bars), ``<!-- channel-ranking -->``,
``<!-- target-specificity -->`` (which targets carry direction) and ``<!-- results -->``
(the paper's tables and the benchmarks).

Usage:
    python scripts/results_tables.py
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = {
    "quality": ["model_quality"],
    "channel-ranking": ["channel_ranking"],
    "target-specificity": ["target_specificity"],
    "results": ["tune_control", "table1_synthesis", "table1_reference", "camera_pan", "two_objects", "table4_channels",
                "ablations", "prompt_no_motion", "benchmark", "benchmark_full"],
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
    readme = ROOT / "README.md"
    text = readme.read_text()
    for block, names in BLOCKS.items():
        text, n = fill(text, block, names)
        print(f"{block}: {n} tables")
    readme.write_text(text)


if __name__ == "__main__":
    main()

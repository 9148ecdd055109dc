"""Copy the measured tables (docs/results/*.md, written by `moft evaluate` and scripts/benchmark.py)
into README.md between the `<!-- results -->` markers, so the README shows exactly what was run.

Usage:
    python scripts/results_tables.py
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["table1_synthesis", "table1_reference", "camera_pan", "two_objects", "table4_channels", "ablations",
         "tune_step_size", "benchmark"]


def main():
    parts = []
    for name in ORDER:
        md = ROOT / "docs" / "results" / f"{name}.md"
        if md.exists():
            parts.append(f"<!-- from docs/results/{name}.md -->\n" + md.read_text().strip() + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split("<!-- results -->", 1)
    _, tail = rest.split("<!-- /results -->", 1)
    readme.write_text(head + "<!-- results -->\n" + "\n".join(parts) + "<!-- /results -->" + tail)
    print(f"{len(parts)} tables")


if __name__ == "__main__":
    main()

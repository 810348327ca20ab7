"""Side-by-side scores of several evaluation reports.

    python -m eval.compare reports/full reports/no_ot [--out comparison.md]

One row per task metric, one column per report (named by its folder), plus the change from the first
report when there are two; a task missing from a report shows "–".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval import TASKS
from eval.report import METRICS


def load(report_dir: str | Path) -> dict:
    path = Path(report_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.json in {report_dir}; write one with `python -m eval.run … --out {report_dir}`")
    return json.loads(path.read_text())


def comparison(reports: dict[str, dict]) -> str:
    """A Markdown table of every metric any report has, with the samples each was scored on."""
    names = list(reports)
    delta = len(names) == 2
    lines = ["| task | metric | " + " | ".join(names) + (" | change |" if delta else " |"),
             "| --- | --- |" + " --- |" * (len(names) + delta)]
    for task in TASKS:
        entries = [r["tasks"].get(task) for r in reports.values()]
        if not any(entries):
            continue
        for key, label in METRICS[task]:
            values = [e["metrics"].get(key) if e else None for e in entries]
            if all(v is None for v in values):
                continue
            cells = [f"{v:.3f}" if v is not None else "–" for v in values]
            if delta:
                cells.append(f"{values[1] - values[0]:+.3f}" if None not in values else "–")
            lines.append(f"| {task.upper()} | {label} | " + " | ".join(cells) + " |")
        counts = [f"{e['n']} ({e['parse_failures']} unparsed)" if e else "–" for e in entries]
        lines.append(f"| {task.upper()} | samples | " + " | ".join(counts) + (" | |" if delta else " |"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="report folders written by eval.run")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    try:
        reports = {Path(r).name or str(r): load(r) for r in args.reports}
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(reports) != len(args.reports):
        reports = {str(r): load(r) for r in args.reports}  # two folders with the same name: use the paths
    text = comparison(reports)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

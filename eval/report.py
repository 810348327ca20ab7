"""The files a person reads after an evaluation: metrics.json, report.md and the plots.

Every number in report.md is read from the same dict that metrics.json holds.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval import TASKS, plots
from meerkat.data import TYPE_FIELD

# The metrics each task reports, headline first, with the names the table shows.
METRICS = {
    "arig": (("ciou", "cIoU (IoU ≥ 0.5)"), ("auc", "AUC"), ("mean_iou", "mean IoU")),
    "igatl": (("f1_segments", "F1, segments (IoU ≥ 0.5)"), ("f1_bins", "F1, 0.1 s bins")),
    "avfc": (("accuracy", "accuracy"),),
    "avqa": (("accuracy", "accuracy"),),
    "avc": (("cider", "CIDEr"), ("bleu4", "BLEU-4"), ("rouge_l", "ROUGE-L"), ("meteor", "METEOR")),
}


def table(results: dict) -> str:
    """One Markdown row per task metric: the model's score beside every baseline's."""
    lines = ["| task | n | parse failures | metric | model | baselines |", "| --- | --- | --- | --- | --- | --- |"]
    for task in TASKS:
        if task not in results["tasks"]:
            continue
        entry = results["tasks"][task]
        for k, (key, name) in enumerate(m for m in METRICS[task] if m[0] in entry["metrics"]):
            others = " · ".join(f"{b} {s[key]:.3f}" for b, s in entry["baselines"].items())
            head = (f"{task.upper()} | {entry['n']} | {entry['parse_failures']}" if k == 0 else " | | ")
            lines.append(f"| {head} | {name} | {entry['metrics'][key]:.3f} | {others} |")
    return "\n".join(lines)


def unscored(counts: dict[str, int]) -> str:
    """The data's rows that no score includes, said in the terminal and in report.md alike."""
    return (f"skipped {sum(counts.values())} samples of tasks eval does not score: "
            + ", ".join(f"{task} {n}" for task, n in sorted(counts.items())))


def _by_type_tables(results: dict) -> list[str]:
    parts = []
    for task, field in TYPE_FIELD.items():
        entry = results["tasks"].get(task)
        if not entry:
            continue
        baseline_names = list(entry["baselines"])
        parts += [f"\n### {task.upper()} accuracy by {field.replace('_', ' ')}\n",
                  "| " + " | ".join([field.replace("_", " "), "n", "model", *baseline_names]) + " |",
                  "| " + " | ".join(["---"] * (3 + len(baseline_names))) + " |"]
        for kind, score in entry["metrics"]["by_type"].items():
            cells = [kind or "(none)", str(score["n"]), f"{score['accuracy']:.3f}",
                     *(f"{entry['baselines'][b]['by_type'][kind]['accuracy']:.3f}" for b in baseline_names)]
            parts.append("| " + " | ".join(cells) + " |")
    return parts


def markdown(results: dict, figures: list[str]) -> str:
    run, overall = results["run"], results["overall"]
    lines = [
        "# MeerkatBench report", "",
        f"- model: `{run['checkpoint']}`",
        f"- data: {', '.join(f'`{d}`' for d in run['data'])} (media root `{run['media_root']}`)"
        + (f", first {run['limit']} samples per task" if run.get("limit") else ""),
        f"- samples: {overall['n']}; answers that could not be parsed: {overall['parse_failures']} (scored 0)",
        f"- date: {run['date']}; random baselines seeded with {run['seed']}",
    ]
    if run.get("unscored"):
        lines.append(f"- {unscored(run['unscored'])}")
    if "avc" in results["tasks"]:
        lines.append(f"- captions: {results['tasks']['avc']['scorer']}")
    lines += ["", "Baselines answer the same samples: centre box (half width and height), whole image and a random "
              "box; the whole clip and a random segment; the majority answer (AVQA: per question type); the most "
              "common caption.", "", table(results), *_by_type_tables(results), "", "## Plots", ""]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, results: dict, rows: list[dict], media_root: str) -> list[str]:
    """metrics.json, the plots and report.md; returns the plot file names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    figures = plots.write_all(out_dir, results, rows, media_root)
    (out_dir / "report.md").write_text(markdown(results, figures))
    return figures


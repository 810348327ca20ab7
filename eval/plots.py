"""Report figures (PNG): scores against baselines, the ARIG success curve and IoU histogram, example
boxes on images, and IGATL timelines of predicted against true segments."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eval import TASKS, metrics  # noqa: E402
from eval.baselines import baselines  # noqa: E402
from eval.scoring import HEADLINE, score  # noqa: E402
from meerkat.media import resolve_media_path  # noqa: E402
from meerkat.viz import PREDICTED, TRUTH, draw_boxes  # noqa: E402

EXAMPLES = 8  # images in the ARIG grid
TIMELINES = 10  # clips in the IGATL figure


def write_all(out_dir: Path, results: dict, rows: list[dict], media_root: str) -> list[str]:
    """Every figure the results support; returns their file names."""
    written = [_scores(out_dir / "scores.png", results)]
    arig = [r for r in rows if r["task"] == "arig"]
    if arig:
        written += [_success_curve(out_dir / "arig_success.png", arig, results["run"]["seed"]),
                    _iou_histogram(out_dir / "arig_iou_hist.png", arig),
                    _examples(out_dir / "arig_examples.png", arig, media_root)]
    igatl = [r for r in rows if r["task"] == "igatl"]
    if igatl:
        written.append(_timelines(out_dir / "igatl_timelines.png", igatl))
    return [Path(w).name for w in written]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _scores(path: Path, results: dict) -> Path:
    tasks = [t for t in TASKS if t in results["tasks"]]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        entry, key = results["tasks"][task], HEADLINE[task]
        names = ["model", *entry["baselines"]]
        values = [entry["metrics"][key], *(b[key] for b in entry["baselines"].values())]
        ax.bar(range(len(names)), values, color=["tab:red"] + ["tab:gray"] * (len(names) - 1))
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{task.upper()} {key}", fontsize=10)
        for x, v in enumerate(values):
            ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max(1.0, max(values) * 1.15))
    return _save(fig, path)


def _success_curve(path: Path, rows: list[dict], seed: int) -> Path:
    targets = [r["target"] for r in rows]
    curves = {"model": [r["scores"]["iou"] for r in rows]}
    for name, predictions in baselines("arig", targets, seed).items():
        curves[name] = [s["iou"] for s in score("arig", predictions, targets)[1]]
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, ious in curves.items():
        auc = metrics.arig_summary(ious)["auc"]
        ax.plot(metrics.THRESHOLDS, metrics.success_curve(ious), label=f"{name} (AUC {auc:.3f})",
                linewidth=2 if name == "model" else 1)
    ax.axvline(metrics.IOU_THRESHOLD, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("share of samples with IoU ≥ threshold")
    ax.set_title("ARIG success rate (cIoU at 0.5)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _iou_histogram(path: Path, rows: list[dict]) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist([r["scores"]["iou"] for r in rows], bins=np.linspace(0, 1, 21), color="tab:red", edgecolor="white")
    ax.set_xlabel("IoU with the true box")
    ax.set_ylabel("samples")
    ax.set_title(f"ARIG IoU of {len(rows)} answers")
    return _save(fig, path)


def _examples(path: Path, rows: list[dict], media_root: str) -> Path:
    shown = rows[:EXAMPLES]
    cols = min(4, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, shown):
        image = draw_boxes(resolve_media_path(media_root, row["image"]), predicted=[row["parsed"]] if row["parsed"] else [],
                           truth=row["target"]["boxes"])
        ax.imshow(image)
        ax.set_title(f"IoU {row['scores']['iou']:.2f}" + ("" if row["parsed"] else " (no box)"), fontsize=9)
    fig.suptitle("truth green, prediction red", fontsize=9)
    return _save(fig, path)


def _timelines(path: Path, rows: list[dict]) -> Path:
    shown = rows[:TIMELINES]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.6 * len(shown)))
    for k, row in enumerate(shown):
        y = len(shown) - 1 - k
        for segments, colour, offset in ((row["target"]["segments"], TRUTH, 0.2), (row["parsed"] or [], PREDICTED, -0.2)):
            ax.broken_barh([(s, e - s) for s, e in segments], (y + offset - 0.15, 0.3), color=np.array(colour) / 255)
        ax.text(row["target"]["duration"] * 1.01, y, f"F1 {row['scores']['f1_segments']:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(len(shown)), [r["id"].split("/")[-2] if r["id"].count("/") >= 2 else r["id"]
                                       for r in reversed(shown)], fontsize=7)
    ax.set_xlim(0, max(r["target"]["duration"] for r in shown) * 1.12)
    ax.set_xlabel("seconds")
    ax.set_title("IGATL: true segments (green, upper) and predicted (red, lower)", fontsize=9)
    return _save(fig, path)

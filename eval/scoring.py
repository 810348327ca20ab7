"""Per-sample scores and task summaries from structured predictions and targets.

The model's parsed answers and every baseline's predictions go through `score`, so all numbers in a
report come from one code path. A None prediction (unparseable answer) scores zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from eval import metrics
from eval.answers import normalize_answer
from meerkat.data import TYPE_FIELD

# The score a task is judged by first (plots, comparisons, the demo's bars).
HEADLINE = {"arig": "ciou", "igatl": "f1_segments", "avfc": "accuracy", "avqa": "accuracy", "avc": "cider"}


def score_sample(task: str, prediction, target: dict) -> dict:
    """This sample's scores (captions are scored as a corpus; their per-sample CIDEr comes from `score`)."""
    if task == "arig":
        return {"iou": metrics.grounding_iou(prediction, target["boxes"])}
    if task == "igatl":
        if prediction is None:  # not "no segments": F1 of two empty sets is 1, and an answer that says nothing is 0
            return {"f1_bins": 0.0, "f1_segments": 0.0}
        return {"f1_bins": metrics.bin_f1(prediction, target["segments"], target["duration"]),
                "f1_segments": metrics.segment_f1(prediction, target["segments"])}
    if task == "avfc":
        return {"correct": prediction is not None and prediction == bool(target["truth"])}
    if task == "avqa":
        return {"correct": prediction is not None and prediction == normalize_answer(str(target["answer"]))}
    if task == "avc":
        return {}
    raise ValueError(f"no MeerkatBench task {task!r}")


def score(task: str, predictions: Sequence, targets: Sequence[dict]) -> tuple[dict, list[dict]]:
    """(summary, per-sample scores) of `predictions` against `targets`, in the same order."""
    if len(predictions) != len(targets):
        raise ValueError(f"{task}: {len(predictions)} predictions for {len(targets)} targets")
    per_sample = [score_sample(task, p, t) for p, t in zip(predictions, targets)]
    if task == "arig":
        summary = metrics.arig_summary([s["iou"] for s in per_sample])
    elif task == "igatl":
        summary = {k: _mean([s[k] for s in per_sample]) for k in ("f1_segments", "f1_bins")}
    elif task == "avc":
        ids = [str(i) for i in range(len(targets))]
        summary, cider = metrics.caption_scores({i: p or "" for i, p in zip(ids, predictions)},
                                                {i: t["captions"] for i, t in zip(ids, targets)})
        per_sample = [{"cider": cider[i]} for i in ids]
    else:
        summary = {"accuracy": metrics.accuracy([s["correct"] for s in per_sample])}
    if task in TYPE_FIELD:
        summary["by_type"] = _by_type(task, per_sample, targets)
    return summary, per_sample


def _by_type(task: str, per_sample: list[dict], targets: Sequence[dict]) -> dict:
    groups = defaultdict(list)
    for s, t in zip(per_sample, targets):
        groups[str(t.get(TYPE_FIELD[task], ""))].append(s["correct"])
    return {kind: {"accuracy": metrics.accuracy(c), "n": len(c)} for kind, c in sorted(groups.items())}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0

"""Trivial predictions for the same samples the model answers, so every score in a report has context.

Each baseline returns one structured prediction per target, scored by `eval.scoring.score` exactly
like the model's. The majority and constant-caption baselines are computed from the evaluated
samples' own targets: the majority answer is the best any constant answer (AVQA: one per question
type) scores there; the constant caption is a strong single caption, not the best-scoring one.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from eval.answers import normalize_answer

CENTRE_BOX = [0.25, 0.25, 0.75, 0.75]  # half the width and height, centred
WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]


def baselines(task: str, targets: Sequence[dict], seed: int = 0) -> dict[str, list]:
    """{baseline name: predictions} for `task`."""
    rng = random.Random(seed)
    n = len(targets)
    if task == "arig":
        return {"centre box": [CENTRE_BOX] * n, "whole image": [WHOLE_IMAGE] * n,
                "random box": [_random_box(rng) for _ in range(n)]}
    if task == "igatl":
        return {"whole clip": [[[0.0, float(t["duration"])]] for t in targets],
                "random segment": [[sorted(rng.uniform(0.0, float(t["duration"])) for _ in range(2))] for t in targets]}
    if task == "avfc":
        return {"majority answer": [_most_common([bool(t["truth"]) for t in targets])] * n}
    if task == "avqa":
        return {"majority answer per question type": _majority_per_type(targets)}
    if task == "avc":
        return {"constant caption": [constant_caption([c for t in targets for c in t["captions"]])] * n}
    raise ValueError(f"no MeerkatBench task {task!r}")


def _random_box(rng: random.Random) -> list[float]:
    x1, x2 = sorted(rng.random() for _ in range(2))
    y1, y2 = sorted(rng.random() for _ in range(2))
    return [x1, y1, x2, y2]


def _most_common(values: list):
    """The most frequent value; ties go to the one seen first."""
    return Counter(values).most_common(1)[0][0] if values else None


def _majority_per_type(targets: Sequence[dict]) -> list[str]:
    answers = defaultdict(list)
    for t in targets:
        answers[t.get("question_type", "")].append(normalize_answer(str(t["answer"])))
    majority = {kind: _most_common(values) for kind, values in answers.items()}
    return [majority[t.get("question_type", "")] for t in targets]


def constant_caption(captions: Sequence[str]) -> str:
    """The most frequent caption; among equally frequent ones, the one whose words appear in the most
    captions on average (a consensus caption), which is the strongest single caption to compare with."""
    if not captions:
        return ""
    counts = Counter(captions)
    top = max(counts.values())
    tied = [c for c, k in counts.items() if k == top]
    if len(tied) == 1:
        return tied[0]
    document_frequency = Counter(w for c in captions for w in set(c.lower().split()))

    def consensus(caption: str) -> float:
        words = caption.lower().split()
        return sum(document_frequency[w] for w in words) / max(len(words), 1)

    return max(tied, key=consensus)

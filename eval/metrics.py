"""MeerkatBench metric functions on plain Python values: boxes, segments, answers, captions.

Every function scores parsed predictions against targets and knows nothing of models or files, so
a baseline and the model are scored by the same code. Captions are scored by `pycocoevalcap` (the
COCO caption toolkit), the reference implementation of BLEU, ROUGE-L, CIDEr and METEOR.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import numpy as np
from scipy.integrate import trapezoid
from scipy.optimize import linear_sum_assignment

from meerkat.grounding import box_iou, merge_segments, segment_iou

IOU_THRESHOLD = 0.5  # a box or segment counts as found at IoU >= 0.5 (cIoU, segment-level F1)
THRESHOLDS = np.linspace(0.0, 1.0, 101)  # IoU thresholds of the ARIG success curve


def grounding_iou(predicted: Sequence[float] | None, truths: Sequence[Sequence[float]]) -> float:
    """IoU of the predicted box with the best-matching ground-truth box; 0 when nothing was predicted."""
    if predicted is None:
        return 0.0
    return max((box_iou(predicted, t) for t in truths), default=0.0)


def success_curve(ious: Sequence[float], thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """Share of samples whose IoU reaches each threshold."""
    values = np.asarray(ious, dtype=float)
    return (values[None, :] >= thresholds[:, None]).mean(axis=1) if len(values) else np.zeros(len(thresholds))


def arig_summary(ious: Sequence[float]) -> dict:
    """cIoU (share with IoU >= 0.5), AUC of the success curve over thresholds 0..1, mean IoU."""
    return {"ciou": float(np.mean(np.asarray(ious) >= IOU_THRESHOLD)) if len(ious) else 0.0,
            "auc": float(trapezoid(success_curve(ious), THRESHOLDS)),
            "mean_iou": float(np.mean(ious)) if len(ious) else 0.0}


def _f1(true_positives: float, predicted: float, actual: float) -> float:
    """F1 from counts; 1 when both sides are empty (nothing to find, nothing claimed)."""
    if predicted == 0 and actual == 0:
        return 1.0
    return 2 * true_positives / (predicted + actual)


def time_bins(segments: Sequence[Sequence[float]], duration: float, bin_seconds: float) -> np.ndarray:
    """Boolean per time bin: does a segment cover the bin's centre."""
    centres = (np.arange(int(np.ceil(duration / bin_seconds - 1e-9))) + 0.5) * bin_seconds
    covered = np.zeros(len(centres), dtype=bool)
    for start, end in segments:
        covered |= (centres >= start) & (centres < end)
    return covered


def bin_f1(predicted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], duration: float,
           bin_seconds: float = 0.1) -> float:
    """F1 over time bins of `bin_seconds` between the bins the prediction and the truth cover."""
    p, t = time_bins(predicted, duration, bin_seconds), time_bins(truth, duration, bin_seconds)
    return _f1(float((p & t).sum()), float(p.sum()), float(t.sum()))


def segment_f1(predicted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]],
               threshold: float = IOU_THRESHOLD) -> float:
    """F1 of one-to-one matches (IoU >= threshold, the most matches possible) between predicted and true
    segments, each merged first: overlapping segments state one stretch of sound, not two claims."""
    predicted, truth = merge_segments(predicted), merge_segments(truth)
    if not predicted or not truth:
        return _f1(0.0, len(predicted), len(truth))
    hits = np.array([[segment_iou(p, t) >= threshold for t in truth] for p in predicted], dtype=float)
    rows, cols = linear_sum_assignment(hits, maximize=True)
    return _f1(float(hits[rows, cols].sum()), len(predicted), len(truth))


def accuracy(correct: Sequence[bool]) -> float:
    return float(np.mean(correct)) if len(correct) else 0.0


def java_available() -> bool:
    """METEOR and the PTB tokenizer of pycocoevalcap run on Java."""
    return shutil.which("java") is not None


def caption_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> tuple[dict, dict[str, float]]:
    """Corpus BLEU-4, ROUGE-L and CIDEr (and METEOR when Java exists) of one caption per id against its
    references, plus each id's CIDEr. Text is PTB-tokenised (Java) or, without Java, lower-cased with the
    same punctuation removed; `info` in the result says which."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids = sorted(predictions)
    if not ids:
        return {"bleu4": 0.0, "rouge_l": 0.0, "cider": 0.0}, {}
    java = java_available()
    tokenize = _ptb_tokenize if java else _plain_tokenize
    res = tokenize({i: [predictions[i]] for i in ids})
    gts = tokenize({i: list(references[i]) for i in ids})
    # An empty caption would break BLEU's brevity penalty; score it as a caption of one unknown word.
    res = {i: [c if c.strip() else "<empty>"] for i, [c] in res.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, per_id = Cider().compute_score(gts, res)
    scores = {"bleu4": float(bleu[3]), "rouge_l": float(rouge), "cider": float(cider)}
    if java:
        from pycocoevalcap.meteor.meteor import Meteor

        scores["meteor"] = float(Meteor().compute_score(gts, res)[0])
    return scores, {i: float(s) for i, s in zip(ids, per_id)}


def caption_info() -> str:
    """What the caption scores were computed with, for the report."""
    if java_available():
        return ("pycocoevalcap: PTB tokenizer, BLEU-4, ROUGE-L, CIDEr, METEOR (Java found); SPICE not run "
                "(it downloads Stanford CoreNLP models at first use)")
    return ("pycocoevalcap: BLEU-4, ROUGE-L, CIDEr on lower-cased text with PTB punctuation removed; "
            "METEOR and SPICE not run (no Java)")


def _ptb_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # It writes one caption per line and reads the lines back in order; it replaces only "\n", and Java
    # also ends a line at "\r", "\v", "\f", U+2028, U+2029, which would shift every later caption.
    return PTBTokenizer().tokenize({i: [{"caption": " ".join(c.split())} for c in cs] for i, cs in captions.items()})


def _plain_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    table = str.maketrans({p: " " for p in PUNCTUATIONS if len(p) == 1})
    return {i: [" ".join(c.lower().translate(table).split()) for c in cs] for i, cs in captions.items()}

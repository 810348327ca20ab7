import numpy as np
import pytest
from sklearn.metrics import auc as sklearn_auc
from sklearn.metrics import f1_score

from eval import metrics
from meerkat.grounding import box_iou, merge_segments


@pytest.mark.parametrize("a, b, expected", [
    ([0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], 0.0),             # touching corners: disjoint
    ([0.0, 0.0, 0.2, 0.2], [0.6, 0.6, 0.9, 0.9], 0.0),             # apart
    ([0.1, 0.2, 0.4, 0.6], [0.1, 0.2, 0.4, 0.6], 1.0),             # identical
    ([0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.75], 0.25),        # nested: inner area / outer area
    ([0.0, 0.0, 0.5, 1.0], [0.25, 0.0, 0.75, 1.0], 0.25 / 0.75),   # half overlap of equal boxes
])
def test_box_iou_hand_computed(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)
    assert box_iou(b, a) == pytest.approx(expected)


def test_box_iou_of_a_degenerate_box_is_zero():
    assert box_iou([0.3, 0.3, 0.3, 0.3], [0.3, 0.3, 0.3, 0.3]) == 0.0


def test_grounding_iou_takes_the_best_true_box_and_zero_without_a_prediction():
    truths = [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 1.0, 1.0]]
    assert metrics.grounding_iou([0.5, 0.5, 1.0, 1.0], truths) == 1.0
    assert metrics.grounding_iou(None, truths) == 0.0


def test_arig_summary_of_a_known_set_matches_sklearn_auc():
    ious = [0.0, 0.3, 0.5, 0.7, 1.0]
    summary = metrics.arig_summary(ious)
    assert summary["ciou"] == pytest.approx(3 / 5)
    assert summary["mean_iou"] == pytest.approx(0.5)
    curve = metrics.success_curve(ious)
    assert curve[0] == 1.0 and curve[50] == pytest.approx(0.6) and curve[-1] == pytest.approx(0.2)
    assert summary["auc"] == pytest.approx(sklearn_auc(metrics.THRESHOLDS, curve))
    # The area under a step curve is close to the mean IoU (exactly, in the limit of fine thresholds).
    assert summary["auc"] == pytest.approx(np.mean(ious), abs=0.01)


def test_all_perfect_and_all_missed_boxes():
    assert metrics.arig_summary([1.0, 1.0]) == {"ciou": 1.0, "auc": pytest.approx(1.0), "mean_iou": 1.0}
    missed = metrics.arig_summary([0.0, 0.0])
    assert missed["ciou"] == 0.0 and missed["auc"] == pytest.approx(0.005)  # only threshold 0 is reached


def test_merge_segments_joins_overlapping_and_touching_ones():
    assert merge_segments([[5.0, 7.0], [1.0, 3.0], [2.0, 4.0], [7.0, 8.0]]) == [[1.0, 4.0], [5.0, 8.0]]


def test_segment_f1_empty_prediction_is_zero():
    assert metrics.segment_f1([], [[1.0, 2.0]]) == 0.0
    assert metrics.bin_f1([], [[1.0, 2.0]], duration=10.0) == 0.0


def test_segment_f1_with_several_segments():
    truth = [[0.0, 2.0], [4.0, 6.0], [8.0, 9.0]]
    predicted = [[0.2, 2.0], [4.0, 4.5], [7.9, 9.0]]  # IoU 0.9 hit, 0.25 miss, ~0.91 hit
    # 2 true positives, 3 predicted, 3 true: F1 = 2*2 / (3+3)
    assert metrics.segment_f1(predicted, truth) == pytest.approx(4 / 6)


def test_segment_f1_matches_one_to_one():
    # Overlapping predictions are merged into one claim first: one hit, one truth missed.
    truth = [[1.0, 3.0], [6.0, 8.0]]
    assert metrics.segment_f1([[1.0, 2.5], [2.0, 3.0]], truth) == pytest.approx(2 * 1 / (1 + 2))
    # Unmerged, the second prediction would be a false positive (each truth matches once).
    assert metrics.segment_f1([[1.0, 3.0], [1.2, 3.0]], [[1.0, 3.0]]) == 1.0


def test_bin_f1_matches_sklearn_on_the_same_bins():
    truth, predicted, duration = [[1.0, 3.0], [6.0, 6.5]], [[2.0, 4.0], [6.2, 7.0], [6.4, 6.6]], 10.0
    t = metrics.time_bins(truth, duration, 0.1)
    p = metrics.time_bins(predicted, duration, 0.1)
    assert len(t) == 100 and t.sum() == 25
    assert metrics.bin_f1(predicted, truth, duration) == pytest.approx(f1_score(t, p))
    # Hand count: truth 25 bins, prediction 20 + 8 = 28 bins, overlap 10 + 3 = 13 → 26 / 53.
    assert metrics.bin_f1(predicted, truth, duration) == pytest.approx(26 / 53)


def test_bin_f1_of_overlapping_predictions_counts_each_bin_once():
    assert metrics.bin_f1([[1.0, 3.0], [2.0, 3.0]], [[1.0, 3.0]], duration=10.0) == 1.0


def test_accuracy():
    assert metrics.accuracy([True, False, True, True]) == 0.75
    assert metrics.accuracy([]) == 0.0


def test_caption_scores_rank_an_exact_caption_above_a_wrong_one():
    references = {"a": ["a red circle beeps twice on a striped background"],
                  "b": ["a blue square hums once on a smooth gradient"],
                  "c": ["a green star chirps once next to a yellow circle"]}
    exact, per_sample = metrics.caption_scores({k: v[0] for k, v in references.items()}, references)
    wrong, _ = metrics.caption_scores({"a": "dogs bark loudly", "b": "cats meow", "c": "rain falls"}, references)
    assert set(exact) >= {"bleu4", "rouge_l", "cider"}
    assert exact["bleu4"] == pytest.approx(1.0) and exact["rouge_l"] == pytest.approx(1.0)
    assert exact["cider"] > 5 * max(wrong["cider"], 1e-3) and wrong["bleu4"] < 1e-3
    assert sorted(per_sample) == ["a", "b", "c"] and min(per_sample.values()) > 1.0


def test_caption_scores_without_java_use_the_plain_tokenizer(monkeypatch):
    monkeypatch.setattr(metrics, "java_available", lambda: False)
    scores, _ = metrics.caption_scores({"a": "A red circle, beeping."}, {"a": ["a red circle beeping"]})
    assert "meteor" not in scores and scores["rouge_l"] == pytest.approx(1.0)
    assert "no Java" in metrics.caption_info()


def test_an_empty_caption_scores_zero_not_an_error(monkeypatch):
    monkeypatch.setattr(metrics, "java_available", lambda: False)
    scores, per_sample = metrics.caption_scores({"a": ""}, {"a": ["a red circle beeps"]})
    assert scores["cider"] == 0.0 and per_sample["a"] == 0.0


@pytest.mark.skipif(not metrics.java_available(), reason="the PTB tokenizer runs on Java")
@pytest.mark.parametrize("line_break", ["\r", "\v", "\f", "\u2028", "\u2029"])
def test_a_line_break_inside_a_caption_leaves_the_other_captions_in_place(line_break):
    """The PTB tokenizer reads one caption per line: a caption broken in two would shift every later one."""
    references = {"a": ["a red circle beeps twice"], "b": ["a blue square hums once"], "c": ["a green star chirps"]}
    predictions = {"a": f"a red circle{line_break}beeps twice", "b": references["b"][0], "c": references["c"][0]}
    scores, per_sample = metrics.caption_scores(predictions, references)
    assert scores["bleu4"] == pytest.approx(1.0) and min(per_sample.values()) > 1.0

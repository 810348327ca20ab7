import pytest

from eval import answers, baselines, metrics, scoring
from instruct_data import templates
from meerkat.grounding import parse_verdict


@pytest.mark.parametrize("text, expected", [
    ("The answer is the red square.", "red square"),
    ("Answer: Two", "2"),
    ("I'd say left.", "left"),
    ("  Yes ", "yes"),
    ("the blue  circle", "blue circle"),
])
def test_normalize_answer_strips_the_training_wrappers(text, expected):
    assert answers.normalize_answer(text) == expected


def test_every_avqa_answer_template_normalises_back_to_the_bare_answer():
    for phrasing in templates.AVQA_ANSWERS:
        assert answers.normalize_answer(phrasing.format(answer="the Green Star")) == "green star", phrasing


def test_every_caption_template_gives_back_the_caption():
    caption = "A red circle beeps twice on a striped background."
    for phrasing in templates.AVC_ANSWERS + templates.CAPTION_AUDIO_ANSWERS:
        assert answers.caption_text(phrasing.format(caption=caption)) == caption, phrasing


@pytest.mark.parametrize("text, expected", [
    ("Yes, that is true.", True), ("No.", False), ("no, that's incorrect", False), ("TRUE", True),
    ("Maybe", None), ("", None), ("Nothing is there", None),
    # the facts first, the verdict last: the last verdict word decides
    ("The sound is made by the dog. So the statement is false.", False),
    ("The cat is heard during [1.0, 2.0] seconds. So yes, it is true.", True),
    ("The picture shows the dog. So no, that does not match the image and the sound.", False),
])
def test_verdict(text, expected):
    assert parse_verdict(text) is expected
    assert answers.parse("avfc", text, {}) is expected


def test_every_avfc_answer_template_gives_its_verdict_after_any_reason():
    reasons = [r.format(label="dog", objects="the dog and the cat", segments="[1.0, 2.0]", boxes="[0.10, 0.20, 0.30, 0.40]")
               for phrasings in templates.AVFC_REASONS.values() for r in phrasings]
    for reason in reasons:
        assert all(parse_verdict(t.format(reason=reason)) is True for t in templates.AVFC_TRUE_ANSWERS), reason
        assert all(parse_verdict(t.format(reason=reason)) is False for t in templates.AVFC_FALSE_ANSWERS), reason


def test_parse_per_task():
    assert answers.parse("arig", "The dog at [0.10, 0.20, 0.50, 0.60] and [0, 0, 1, 1].", {}) == [0.1, 0.2, 0.5, 0.6]
    assert answers.parse("arig", "somewhere on the left", {}) is None
    assert answers.parse("igatl", "From [1.0, 2.5] and [7, 12].", {"duration": 10.0}) == [[1.0, 2.5], [7.0, 10.0]]
    assert answers.parse("igatl", "it never sounds", {"duration": 10.0}) is None
    assert answers.parse("avqa", "", {}) is None
    with pytest.raises(ValueError, match="no MeerkatBench task 'avx'"):
        answers.parse("avx", "", {})


def test_unparseable_answers_score_zero_and_are_kept():
    targets = [{"boxes": [[0.1, 0.1, 0.5, 0.5]]}, {"boxes": [[0.1, 0.1, 0.5, 0.5]]}]
    summary, per_sample = scoring.score("arig", [None, [0.1, 0.1, 0.5, 0.5]], targets)
    assert [s["iou"] for s in per_sample] == [0.0, 1.0] and summary["ciou"] == 0.5


@pytest.mark.parametrize("task, raw, target", [
    ("arig", "I cannot tell.", {"boxes": [[0.1, 0.1, 0.5, 0.5]]}),
    # no true segments: F1 of an empty prediction against them is 1, but saying nothing parseable is not that
    ("igatl", "I cannot tell.", {"segments": [], "duration": 10.0}),
    ("igatl", "I cannot tell.", {"segments": [[1.0, 2.0]], "duration": 10.0}),
    ("avfc", "I cannot tell.", {"truth": False, "fact_type": 1}),
    ("avqa", "The answer is.", {"answer": "the", "question_type": "what"}),  # both normalise to ""
    ("avc", "Description:", {"captions": ["a red circle beeps"]}),
])
def test_an_unparseable_answer_scores_zero_on_every_task(task, raw, target, monkeypatch):
    monkeypatch.setattr(metrics, "java_available", lambda: False)
    parsed = answers.parse(task, raw, target)
    assert parsed is None
    summary, (per_sample,) = scoring.score(task, [parsed], [target])
    assert per_sample and all(value == 0 for value in per_sample.values()), per_sample
    headline = summary[scoring.HEADLINE[task]]
    assert headline == 0.0
    if task == "arig":  # the success curve counts IoU 0 as reaching threshold 0 (the LVS convention)
        assert summary["auc"] == pytest.approx(0.005)


def test_scores_by_type():
    targets = [{"truth": True, "fact_type": 1}, {"truth": False, "fact_type": 1}, {"truth": True, "fact_type": 3}]
    summary, _ = scoring.score("avfc", [True, True, None], targets)
    assert summary["accuracy"] == pytest.approx(1 / 3)
    assert summary["by_type"] == {"1": {"accuracy": 0.5, "n": 2}, "3": {"accuracy": 0.0, "n": 1}}


def test_baselines_are_computed_on_the_samples():
    arig = baselines.baselines("arig", [{"boxes": [[0.3, 0.3, 0.7, 0.7]]}] * 4, seed=1)
    assert arig["centre box"] == [[0.25, 0.25, 0.75, 0.75]] * 4 and arig["whole image"][0] == [0.0, 0.0, 1.0, 1.0]
    assert all(0 <= b[0] <= b[2] <= 1 and 0 <= b[1] <= b[3] <= 1 for b in arig["random box"])
    assert scoring.score("arig", arig["centre box"], [{"boxes": [[0.3, 0.3, 0.7, 0.7]]}] * 4)[0]["mean_iou"] \
        == pytest.approx(0.16 / 0.25)

    igatl = baselines.baselines("igatl", [{"segments": [[1.0, 2.0]], "duration": 8.0}], seed=0)
    assert igatl["whole clip"] == [[[0.0, 8.0]]]
    (start, end), = igatl["random segment"][0]
    assert 0.0 <= start <= end <= 8.0

    avfc = baselines.baselines("avfc", [{"truth": t} for t in (True, False, False)])
    assert avfc == {"majority answer": [False, False, False]}

    qa = [{"answer": a, "question_type": k} for a, k in
          (("yes", "is there"), ("no", "is there"), ("yes", "is there"), ("2", "how many"), ("3", "how many"), ("3", "how many"))]
    majority = baselines.baselines("avqa", qa)["majority answer per question type"]
    assert majority == ["yes"] * 3 + ["3"] * 3
    assert scoring.score("avqa", majority, qa)[0]["accuracy"] == pytest.approx(4 / 6)


def test_constant_caption_is_the_most_common_then_the_consensus_one():
    assert baselines.constant_caption(["a b", "c d", "c d"]) == "c d"
    captions = ["a red circle beeps", "a red square beeps", "zebra quietly yawns"]
    assert baselines.constant_caption(captions) in captions[:2]
    assert baselines.constant_caption([]) == ""


def test_random_baselines_follow_the_seed():
    targets = [{"boxes": [[0, 0, 1, 1]]}] * 3
    assert baselines.baselines("arig", targets, 5) == baselines.baselines("arig", targets, 5)
    assert baselines.baselines("arig", targets, 5)["random box"] != baselines.baselines("arig", targets, 6)["random box"]

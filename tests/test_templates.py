import random
import string
from collections import Counter

import pytest

from instruct_data.templates import (
    ANSWERS,
    AVFC_REASONS,
    AVFC_STATEMENTS,
    INSTRUCTIONS,
    TASKS,
    answer,
    avfc_statement,
    instruction,
)
from meerkat.grounding import format_box, format_boxes, format_segment, format_segments, parse_boxes, parse_segments

# The documented fields of every template family: the specification the phrasings are checked against.
INSTRUCTION_FIELDS = {
    "arig": set(),
    "igatl": set(),
    "avfc": {"statement"},
    "avqa": {"question"},
    "avc": set(),
    "caption_audio": set(),
    "classify": set(),
}
ANSWER_FIELDS = {
    "arig": {"label", "boxes"},
    "arig_nolabel": {"boxes"},
    "igatl": {"label", "segments"},
    "igatl_nolabel": {"segments"},
    "avfc_true": {"reason"},
    "avfc_false": {"reason"},
    "avqa": {"answer"},
    "avc": {"caption"},
    "caption_audio": {"caption"},
    "classify": {"label"},
}
STATEMENT_FIELDS = {1: {"label"}, 2: {"label"}, 3: {"label", "segment"}, 4: {"box"}}
REASON_FIELDS = {1: {"label"}, 2: {"objects"}, 3: {"label", "segments"}, 4: {"label", "boxes"}}

BOXES = format_boxes([[0.12, 0.3, 0.56, 0.8], [0.6, 0.1, 0.95, 0.5]])
SEGMENTS = format_segments([[1.0, 3.5], [6.0, 8.2]])
VALUES = {
    "statement": "The sound is made by the dog.",
    "question": "How many instruments are playing?",
    "label": "dog",
    "boxes": BOXES,
    "segments": SEGMENTS,
    "segment": format_segment([1.0, 3.5]),
    "box": format_box([0.12, 0.3, 0.56, 0.8]),
    "answer": "two",
    "caption": "A man plays {the} Guitar, and a dog barks twice.",
    "reason": "The sound is made by the dog.",
    "objects": "the dog and the cat",
}

FAMILIES = (
    [(f"instruction {task}", phrasings, INSTRUCTION_FIELDS[task]) for task, phrasings in INSTRUCTIONS.items()]
    + [(f"answer {kind}", phrasings, ANSWER_FIELDS[kind]) for kind, phrasings in ANSWERS.items()]
    + [(f"avfc type {t}", phrasings, STATEMENT_FIELDS[t]) for t, phrasings in AVFC_STATEMENTS.items()]
    + [(f"avfc reason {t}", phrasings, REASON_FIELDS[t]) for t, phrasings in AVFC_REASONS.items()]
)
FAMILY_IDS = [name for name, _, _ in FAMILIES]


def fields_of(phrasing: str) -> list[tuple[str, str, str | None]]:
    """(name, format_spec, conversion) of every replacement field in `phrasing`."""
    return [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(phrasing) if name is not None]


def fill(phrasing: str) -> str:
    return phrasing.format(**{name: VALUES[name] for name, _, _ in fields_of(phrasing)})


def test_the_template_tables_cover_exactly_the_documented_tasks_kinds_and_types():
    assert tuple(INSTRUCTIONS) == TASKS == ("arig", "igatl", "avfc", "avqa", "avc", "caption_audio", "classify")
    assert set(ANSWERS) == set(ANSWER_FIELDS)
    assert set(AVFC_STATEMENTS) == {1, 2, 3, 4}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_at_least_20_instruction_phrasings(task):
    assert len(INSTRUCTIONS[task]) >= 20


@pytest.mark.parametrize("kind", list(ANSWER_FIELDS))
def test_every_answer_kind_has_at_least_5_phrasings(kind):
    assert len(ANSWERS[kind]) >= 5


@pytest.mark.parametrize("fact_type", [1, 2, 3, 4])
def test_every_avfc_fact_type_has_at_least_8_statements(fact_type):
    assert len(AVFC_STATEMENTS[fact_type]) >= 8


@pytest.mark.parametrize(("name", "phrasings", "documented"), FAMILIES, ids=FAMILY_IDS)
def test_no_phrasing_appears_twice_in_its_table(name, phrasings, documented):
    assert [p for p, n in Counter(phrasings).items() if n > 1] == []


@pytest.mark.parametrize(("name", "phrasings", "documented"), FAMILIES, ids=FAMILY_IDS)
def test_every_phrasing_is_a_tuple_of_str_using_exactly_its_documented_fields(name, phrasings, documented):
    assert isinstance(phrasings, tuple) and all(isinstance(p, str) for p in phrasings)
    for phrasing in phrasings:
        fields = fields_of(phrasing)
        assert {field for field, _, _ in fields} == documented, phrasing
        assert all(spec == "" and conv is None for _, spec, conv in fields), phrasing
        assert fill(phrasing).strip() == fill(phrasing) != ""


@pytest.mark.parametrize(("name", "phrasings", "documented"), FAMILIES, ids=FAMILY_IDS)
def test_no_phrasing_carries_media_placeholders_or_doubled_spaces(name, phrasings, documented):
    for phrasing in phrasings:
        assert "<image>" not in phrasing and "<audio>" not in phrasing, phrasing
        assert "  " not in phrasing and "\n" not in phrasing, phrasing


@pytest.mark.parametrize("task", TASKS)
def test_the_same_seed_gives_the_same_instructions(task):
    fields = {name: VALUES[name] for name in INSTRUCTION_FIELDS[task]}
    rng_a, rng_b = random.Random(7), random.Random(7)
    assert [instruction(task, rng_a, **fields) for _ in range(50)] == [
        instruction(task, rng_b, **fields) for _ in range(50)
    ]


@pytest.mark.parametrize("task", TASKS)
def test_different_seeds_give_different_varied_picks(task):
    fields = {name: VALUES[name] for name in INSTRUCTION_FIELDS[task]}
    rng_a, rng_b = random.Random(1), random.Random(2)
    picks_a = [instruction(task, rng_a, **fields) for _ in range(50)]
    picks_b = [instruction(task, rng_b, **fields) for _ in range(50)]
    assert picks_a != picks_b
    assert len(set(picks_a)) > 10


def test_answers_and_statements_are_seeded_too():
    def draw(seed):
        rng = random.Random(seed)
        return [answer("arig", rng, label="dog", boxes=BOXES) for _ in range(20)] + [
            avfc_statement(3, rng, label="dog", segment=VALUES["segment"]) for _ in range(20)
        ]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_avfc_true_answers_give_the_reason_first_and_never_say_false():
    for phrasing in ANSWERS["avfc_true"]:
        assert phrasing.startswith("{reason} "), phrasing
        assert "false" not in phrasing.lower() and " not " not in phrasing and " no" not in phrasing.lower(), phrasing


def test_avfc_false_answers_give_the_reason_first_and_never_say_true():
    for phrasing in ANSWERS["avfc_false"]:
        assert phrasing.startswith("{reason} "), phrasing
        assert "true" not in phrasing.lower() and "yes" not in phrasing.lower(), phrasing


def test_avfc_reasons_hold_no_verdict_word():
    words = {"yes", "no", "true", "false", "correct", "incorrect", "not"}
    for phrasings in AVFC_REASONS.values():
        for phrasing in phrasings:
            assert not words & set(phrasing.lower().replace(".", " ").split()), phrasing


@pytest.mark.parametrize("kind", ["avc", "caption_audio"])
def test_captions_appear_verbatim_braces_and_case_included(kind):
    for phrasing in ANSWERS[kind]:
        assert VALUES["caption"] in phrasing.format(caption=VALUES["caption"]), phrasing
    rng = random.Random(0)
    assert all(VALUES["caption"] in answer(kind, rng, caption=VALUES["caption"]) for _ in range(20))


def test_avqa_answers_keep_the_answer_verbatim_and_start_with_the_bare_answer():
    assert ANSWERS["avqa"][:2] == ("{answer}", "{answer}.")
    assert all("two" in phrasing.format(answer="two") for phrasing in ANSWERS["avqa"])


@pytest.mark.parametrize("phrasing", INSTRUCTIONS["arig"])
def test_arig_instructions_ask_for_a_normalised_corner_box(phrasing):
    text = phrasing.lower()
    assert "box" in text
    assert "[x1, y1, x2, y2]" in text or "corners" in text
    normalised = ("normaliz", "normalis", "0 and 1", "0 to 1", "fraction", "relative", "divided by", "0 is the")
    assert any(cue in text for cue in normalised), phrasing


@pytest.mark.parametrize("phrasing", INSTRUCTIONS["igatl"])
def test_igatl_instructions_ask_for_times_in_seconds(phrasing):
    assert "seconds" in phrasing


@pytest.mark.parametrize("phrasing", INSTRUCTIONS["avfc"])
def test_avfc_instructions_ask_for_true_false_or_yes_no(phrasing):
    text = phrasing.lower()
    assert "true" in text or "yes" in text


def test_caption_audio_instructions_never_mention_the_picture():
    for phrasing in INSTRUCTIONS["caption_audio"]:
        assert not any(word in phrasing.lower() for word in ("image", "picture", "see", "visual")), phrasing


@pytest.mark.parametrize("kind", ["arig", "arig_nolabel"])
def test_arig_answers_parse_back_to_exactly_the_boxes(kind):
    for phrasing in ANSWERS[kind]:
        parsed = parse_boxes(phrasing.format(label="dog", boxes=BOXES))
        assert parsed.values == [[0.12, 0.3, 0.56, 0.8], [0.6, 0.1, 0.95, 0.5]], phrasing
        assert parsed.warnings == []


@pytest.mark.parametrize("kind", ["igatl", "igatl_nolabel"])
def test_igatl_answers_parse_back_to_exactly_the_segments(kind):
    for phrasing in ANSWERS[kind]:
        parsed = parse_segments(phrasing.format(label="dog", segments=SEGMENTS))
        assert parsed.values == [[1.0, 3.5], [6.0, 8.2]], phrasing
        assert parsed.warnings == []


def test_answer_and_statement_phrasings_add_no_digits_of_their_own():
    phrasings = [p for ps in ANSWERS.values() for p in ps] + [p for ps in AVFC_STATEMENTS.values() for p in ps]
    assert [p for p in phrasings if any(c.isdigit() for c in p)] == []


def test_functions_fill_the_picked_phrasing_with_the_fields():
    rng = random.Random(0)
    assert "How many instruments are playing?" in instruction("avqa", rng, question="How many instruments are playing?")
    assert "The sound is made by the dog." in instruction("avfc", rng, statement="The sound is made by the dog.")
    assert "[0.12, 0.30, 0.56, 0.80]" in avfc_statement(4, rng, box="[0.12, 0.30, 0.56, 0.80]")
    text = answer("igatl", rng, label="dog", segments="[1.0, 3.5]")
    assert "dog" in text and "[1.0, 3.5]" in text


def test_unknown_task_is_a_value_error_listing_every_valid_task():
    with pytest.raises(ValueError, match="unknown task 'grounding'") as info:
        instruction("grounding", random.Random(0))
    assert all(task in str(info.value) for task in TASKS)


def test_unknown_answer_kind_is_a_value_error_listing_every_valid_kind():
    with pytest.raises(ValueError, match="unknown answer kind 'avfc'") as info:
        answer("avfc", random.Random(0))
    assert all(kind in str(info.value) for kind in ANSWERS)


def test_unknown_avfc_type_is_a_value_error_listing_the_valid_types():
    with pytest.raises(ValueError, match=r"unknown AVFC fact type 5; valid types: 1, 2, 3, 4"):
        avfc_statement(5, random.Random(0), label="dog")


@pytest.mark.parametrize(
    ("call", "field", "owner"),
    [
        (lambda rng: instruction("avqa", rng), "question", "task 'avqa'"),
        (lambda rng: instruction("avfc", rng), "statement", "task 'avfc'"),
        (lambda rng: answer("arig", rng, label="dog"), "boxes", "kind 'arig'"),
        (lambda rng: answer("igatl", rng, segments=SEGMENTS), "label", "kind 'igatl'"),
        (lambda rng: answer("avc", rng, label="dog"), "caption", "kind 'avc'"),
        (lambda rng: avfc_statement(3, rng, label="dog"), "segment", "type 3"),
    ],
)
def test_a_missing_field_is_a_value_error_naming_the_field_and_the_task(call, field, owner):
    with pytest.raises(ValueError, match=f"{owner}.*'{field}'") as info:
        call(random.Random(0))
    assert isinstance(info.value.__cause__, KeyError)

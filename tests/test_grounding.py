import math

import pytest

from meerkat.grounding import (
    Parsed,
    format_box,
    format_boxes,
    format_segment,
    format_segments,
    parse_boxes,
    parse_segments,
    parse_verdict,
)


def test_box_is_written_with_two_decimals():
    assert format_box([0.12, 0.3, 0.56, 0.8]) == "[0.12, 0.30, 0.56, 0.80]"


def test_several_boxes_are_joined_by_comma_space():
    boxes = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.95]]
    assert format_boxes(boxes) == "[0.10, 0.20, 0.30, 0.40], [0.50, 0.50, 0.90, 0.95]"


def test_segment_is_written_in_seconds_with_one_decimal():
    assert format_segment([1, 3.5]) == "[1.0, 3.5]"
    assert format_segments([[1, 3.5], [4.26, 10]]) == "[1.0, 3.5], [4.3, 10.0]"


@pytest.mark.parametrize("boxes", [[[0.123, 0.301, 0.556, 0.8]], [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.95]]])
def test_boxes_round_trip_to_two_decimals(boxes):
    parsed = parse_boxes(format_boxes(boxes))
    assert parsed.values == [pytest.approx(box, abs=0.005) for box in boxes]
    assert parsed.warnings == []


@pytest.mark.parametrize("segments", [[[1.0, 3.5]], [[0.0, 2.04], [7.5, 12.3]]])
def test_segments_round_trip_to_one_decimal(segments):
    parsed = parse_segments(format_segments(segments))
    assert parsed.values == [pytest.approx(segment, abs=0.05) for segment in segments]
    assert parsed.warnings == []


@pytest.mark.parametrize(
    "text",
    [
        "The dog at [0.12,0.30 ,0.56, 0.80].",
        "[  0.12 , 0.3,0.56 ,0.8  ]",
        "box: (0.12, 0.30, 0.56, 0.80)",
        "[[0.12, 0.30, 0.56, 0.80]]",
    ],
)
def test_messy_box_text_is_read(text):
    assert parse_boxes(text).values == [[0.12, 0.30, 0.56, 0.80]]


def test_numbers_without_decimals_or_leading_zero_are_read():
    assert parse_boxes("[0, .3, 1, 0.8]").values == [[0.0, 0.3, 1.0, 0.8]]
    assert parse_segments("from (2, 5.) seconds").values == [[2.0, 5.0]]


def test_two_boxes_in_one_sentence_are_both_read_in_order():
    text = "A cat [0.1, 0.2, 0.3, 0.4] chases a mouse (0.5, 0.5, 0.9, 0.95) across the room."
    assert parse_boxes(text).values == [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.95]]


def test_each_parser_picks_only_its_own_arity():
    text = "The dog [0.12, 0.30, 0.56, 0.80] barks at [1.0, 3.5]."
    boxes, segments = parse_boxes(text), parse_segments(text)
    assert boxes.values == [[0.12, 0.30, 0.56, 0.80]]
    assert segments.values == [[1.0, 3.5]]
    assert boxes.warnings == segments.warnings == []


@pytest.mark.parametrize("text", ["no box here", "[a, b, c, d]", "[0.1, 0.2, 0.3]", "", "[0.1, 0.2,, 0.3, 0.4]"])
def test_garbage_gives_no_boxes(text):
    assert parse_boxes(text).values == []


def test_group_with_wrong_count_is_skipped_with_warning():
    parsed = parse_boxes("[0.1, 0.2, 0.3]")
    assert parsed.values == []
    assert parsed.warnings == ["skipped [0.1, 0.2, 0.3]: a box has 4 numbers, not 3"]


def test_lone_number_in_prose_is_skipped_silently():
    assert parse_boxes("see figure (2)") == Parsed(values=[], warnings=[])
    assert parse_segments("see figure (2)") == Parsed(values=[], warnings=[])


def test_out_of_range_box_is_clamped_with_warning_naming_the_value():
    parsed = parse_boxes("[-0.1, 0.2, 1.3, 0.9]")
    assert parsed.values == [[0.0, 0.2, 1.0, 0.9]]
    assert len(parsed.warnings) == 2
    assert "x1=-0.1" in parsed.warnings[0]
    assert "x2=1.3" in parsed.warnings[1]


def test_swapped_corners_are_put_in_order_with_warning():
    parsed = parse_boxes("[0.6, 0.8, 0.2, 0.1]")
    assert parsed.values == [[0.2, 0.1, 0.6, 0.8]]
    assert any("swapped x1 and x2" in w for w in parsed.warnings)
    assert any("swapped y1 and y2" in w for w in parsed.warnings)


def test_box_with_zero_width_after_clamping_is_dropped_with_warning():
    parsed = parse_boxes("[1.2, 0.1, 1.5, 0.4]")
    assert parsed.values == []
    assert "dropped" in parsed.warnings[-1]


def test_segment_is_clamped_to_zero_and_to_duration():
    parsed = parse_segments("[-1.0, 3.0], [8.0, 12.5]", duration=10.0)
    assert parsed.values == [[0.0, 3.0], [8.0, 10.0]]
    assert "start=-1" in parsed.warnings[0]
    assert "end=12.5" in parsed.warnings[1]


def test_segment_without_duration_is_not_clamped_above():
    assert parse_segments("[8.0, 120.5]").values == [[8.0, 120.5]]


def test_reversed_segment_is_swapped_and_zero_length_dropped():
    parsed = parse_segments("[3.5, 1.0] and [2.0, 2.0]")
    assert parsed.values == [[1.0, 3.5]]
    assert "swapped start and end" in parsed.warnings[0]
    assert "[2.0, 2.0]: dropped, zero length" in parsed.warnings[1]


def test_non_positive_duration_is_rejected():
    with pytest.raises(ValueError, match="duration must be a positive"):
        parse_segments("[1.0, 2.0]", duration=0)


@pytest.mark.parametrize(
    "box",
    [[0.1, 0.2, 1.2, 0.4], [-0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3], [0.1, math.nan, 0.3, 0.4], [0.5, 0.2, 0.3, 0.4]],
)
def test_formatter_refuses_invalid_box(box):
    with pytest.raises(ValueError) as error:
        format_box(box)
    assert str(box) in str(error.value)
    assert "normalised [x1, y1, x2, y2] in [0, 1]" in str(error.value)


@pytest.mark.parametrize("segment", [[-0.5, 2.0], [3.0, 1.0], [math.nan, 1.0], [1.0]])
def test_formatter_refuses_invalid_segment(segment):
    with pytest.raises(ValueError) as error:
        format_segment(segment)
    assert str(segment) in str(error.value)
    assert "0 <= start <= end" in str(error.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("The statement is not true.", False), ("That is not correct.", False), ("It isn't true.", False),
    ("It isn\u2019t correct.", False), ("It is not false.", True), ("The dog is not heard. So it is true.", True),
])
def test_a_negated_verdict_word_is_read_as_its_opposite(text, expected):
    assert parse_verdict(text) is expected

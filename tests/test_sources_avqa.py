import json
from pathlib import Path

import pytest

from instruct_data.sources import avqa
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "avqa"


def records(split=None) -> dict[str, Record]:
    return {row.value.uid: row.value for row in avqa.read(FIXTURE, split) if isinstance(row.value, Record)}


def test_answer_is_the_chosen_option_and_options_are_kept():
    assert records()["06GyG4-wONQ_000006/1139"] == Record(
        uid="06GyG4-wONQ_000006/1139", clip_id="06GyG4-wONQ", video="video/06GyG4-wONQ_000006.mp4",
        image="frames/06GyG4-wONQ_000006.jpg", audio="audio/06GyG4-wONQ_000006.wav",
        question="How many animals are there in the video?", answer="2", question_type="Which",
        extra={"options": ["3", "One", "4", "2"], "answer_index": 3, "question_relation": "Both"})


def test_clip_id_is_the_youtube_id_even_when_it_holds_dashes_and_underscores():
    record = records()["-0TTFAArJ9k_000030/26"]
    assert (record.clip_id, record.answer, record.question_type) == ("-0TTFAArJ9k", "Helicopter", "Come From")


def test_a_null_option_that_is_not_the_answer_is_kept_as_published():
    assert records()["-0TTFAArJ9k_000030/26"].extra["options"] == ["Dog", "Motorcycle", "Helicopter", None]


def test_bad_rows_are_rejected_and_every_row_is_accounted_for():
    rows = list(avqa.read(FIXTURE, None))
    values = {row.ref: row.value for row in rows}
    rejects = {ref: value.reason for ref, value in values.items() if isinstance(value, Reject)}
    assert rejects == {
        "train_qa.json[1]": "bad_value",  # answer "first" is not an index
        "val_qa.json[2]": "bad_value",  # answer 5 with two options
        "val_qa.json[3]": "missing_field",  # no question_text
        "val_qa.json[4]": "empty_answer",  # the answer picks a null option
    }
    published = sum(len(json.loads(p.read_text())) for p in FIXTURE.glob("*_qa.json"))
    assert len(rows) == published == 8
    # 1139 again: read yields it as a Record; the converter rejects it as duplicate_id
    repeated, first = values["val_qa.json[5]"], values["val_qa.json[0]"]
    assert isinstance(repeated, Record) and repeated.uid == first.uid
    kept = [value for value in values.values() if isinstance(value, Record)]
    assert len(kept) + len(rejects) == published
    assert len(records()) == len(kept) - 1  # the repeated uid is one key


def test_reject_detail_names_the_field_and_value():
    details = {row.ref: row.value.detail for row in avqa.read(FIXTURE, "val") if isinstance(row.value, Reject)}
    assert details["val_qa.json[2]"] == "answer=5 is not an index into multi_choice (2 options)"
    assert details["val_qa.json[3]"] == "no question_text"
    assert details["val_qa.json[4]"] == "answer=1 picks multi_choice[1]=None"


def test_split_reads_only_that_file():
    assert set(records("val")) == {"06GyG4-wONQ_000006/1139", "0AEJTlHIhz0_000358/1205"}
    assert set(records("train")) == {"-0TTFAArJ9k_000030/26"}
    with pytest.raises(ValueError, match="val_qa.json is not the train split: pass train_qa.json, its folder"):
        list(avqa.read(FIXTURE / "val_qa.json", "train"))


def test_a_split_whose_file_is_absent_is_an_error_naming_the_file():
    with pytest.raises(FileNotFoundError, match="test_qa.json"):
        records("test")


@pytest.mark.parametrize("field", ["question_text", "video_name", "id", "question_type"])
def test_a_null_field_is_missing_not_the_text_none(tmp_path, field):
    row = {"id": 26, "video_name": "-0TTFAArJ9k_000030", "video_id": 27, "question_text": "What is making the sound?",
           "multi_choice": ["Dog", "Helicopter"], "answer": 1, "question_relation": "Sound", "question_type": "Come From"}
    (tmp_path / "train_qa.json").write_text(json.dumps([row, row | {field: None}]))
    first, second = avqa.read(tmp_path, None)
    assert first.value.question == "What is making the sound?"
    assert (second.ref, second.value) == ("train_qa.json[1]", Reject("missing_field", f"{field} is null"))

import json
from pathlib import Path

import pytest

from instruct_data.sources import music_avqa
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "music_avqa"


def records(split=None) -> dict[str, Record]:
    return {row.value.uid: row.value for row in music_avqa.read(FIXTURE, split) if isinstance(row.value, Record)}


def test_template_placeholders_are_filled_in_order_from_templ_values():
    assert records()["28884"] == Record(
        uid="28884", clip_id="sa00007434", video="videos/sa00007434.mp4", image="frames/sa00007434.jpg",
        audio="audio/sa00007434.wav", question="Are there piano and ukulele instruments in the video?",
        answer="no", question_type="Visual/Counting")
    assert records()["50"].question == "Where is the first sounding instrument?"


def test_question_without_placeholders_is_kept_and_type_joined_with_a_slash():
    record = records()["157"]
    assert record.question == "How many types of musical instruments sound in the video?"
    assert (record.answer, record.question_type, record.clip_id) == ("two", "Audio-Visual/Counting", "00000259")


def test_bad_rows_are_rejected_and_every_row_is_accounted_for():
    rows = list(music_avqa.read(FIXTURE, None))
    values = {row.ref: row.value for row in rows}
    rejects = {ref: value.reason for ref, value in values.items() if isinstance(value, Reject)}
    assert rejects == {
        "avqa-train.json[3]": "missing_field",  # no anser
        "avqa-train.json[4]": "empty_answer",  # anser " "
        "avqa-train.json[5]": "bad_value",  # one <Object>, no templ_values
        "avqa-train.json[6]": "bad_value",  # type is not a list
    }
    published = sum(len(json.loads(p.read_text())) for p in FIXTURE.glob("avqa-*.json"))
    assert len(rows) == published == 10
    # question_id 8 again: read yields it as a Record; the converter rejects it as duplicate_id
    repeated, first = values["avqa-train.json[7]"], values["avqa-train.json[1]"]
    assert isinstance(repeated, Record) and repeated.uid == first.uid
    kept = [value for value in values.values() if isinstance(value, Record)]
    assert len(kept) + len(rejects) == published
    assert len(records()) == len(kept) - 1  # the repeated uid is one key


def test_reject_detail_names_the_field_and_value():
    details = [row.value.detail for row in music_avqa.read(FIXTURE, "train") if isinstance(row.value, Reject)]
    assert details[0] == "no anser"
    assert "1 placeholders" in details[2] and "templ_values='[]'" in details[2]


def test_split_reads_only_that_file():
    assert set(records("test")) == {"50", "157"}
    assert set(records("train")) == {"28884", "8", "7"}


def test_a_split_whose_file_is_absent_is_an_error_naming_the_file():
    with pytest.raises(FileNotFoundError, match="avqa-val.json"):
        records("val")


def test_a_single_file_of_another_split_is_an_error_not_an_empty_output():
    assert len(list(music_avqa.read(FIXTURE / "avqa-test.json", None))) == 2
    with pytest.raises(ValueError, match="avqa-test.json is not the train split: pass avqa-train.json"):
        list(music_avqa.read(FIXTURE / "avqa-test.json", "train"))


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="'dev'"):
        list(music_avqa.read(FIXTURE, "dev"))


@pytest.mark.parametrize("field", ["question_content", "video_id", "question_id", "anser"])
def test_a_null_field_is_missing_not_the_text_none(tmp_path, field):
    row = {"video_id": "00000272", "question_id": 50, "type": '["Audio-Visual", "Temporal"]',
           "question_content": "Where is the <FL> sounding instrument?", "templ_values": '["first"]',
           "question_deleted": 0, "anser": "left"}
    (tmp_path / "avqa-train.json").write_text(json.dumps([row, row | {field: None}]))
    first, second = music_avqa.read(tmp_path, None)
    assert first.value.question == "Where is the first sounding instrument?"
    assert (second.ref, second.value) == ("avqa-train.json[1]", Reject("missing_field", f"{field} is null"))

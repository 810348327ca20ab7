import json
from pathlib import Path

import pytest

from instruct_data.sources import valor
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "valor"


def records(split=None) -> dict[str, Record]:
    return {row.value.uid: row.value for row in valor.read(FIXTURE, split) if isinstance(row.value, Record)}


def test_caption_row_becomes_a_record_of_its_youtube_clip():
    assert records()["CEfOX4fYlsY_20.000_30.000"] == Record(
        uid="CEfOX4fYlsY_20.000_30.000", clip_id="CEfOX4fYlsY", video="videos/CEfOX4fYlsY_20.000_30.000.mp4",
        image="frames/CEfOX4fYlsY_20.000_30.000.jpg", audio="audio/CEfOX4fYlsY_20.000_30.000.wav",
        captions=["In one room, a yellow bird leaped over the fence. The sound of his mouth ringing."],
        duration=10.0)


@pytest.mark.parametrize("video_id, clip_id", [("0g_-KI5NZ-E_30.000_40.000", "0g_-KI5NZ-E"),
                                               ("2vSF2Yh6o_k_20.000_30.000", "2vSF2Yh6o_k")])
def test_clip_id_keeps_underscores_inside_the_youtube_id(video_id, clip_id):
    assert records()[video_id].clip_id == clip_id


def test_a_list_of_captions_is_kept_whole():
    assert records("train")["PzQfxFLLyM0_220.000_230.000"].captions == [
        "A cartoon character is doing dental treatment while someone is talking in the background music.",
        "A cartoon dentist treats a patient as music plays and someone talks."]


def test_bad_rows_are_rejected_and_every_row_is_accounted_for():
    rows = list(valor.read(FIXTURE, None))
    values = {row.ref: row.value for row in rows}
    rejects = {ref: value.reason for ref, value in values.items() if isinstance(value, Reject)}
    assert rejects == {
        "desc_train.json[1]": "bad_value",  # desc is a number
        "desc_test.json[3]": "missing_field",  # no desc
        "desc_test.json[4]": "empty_answer",  # blank desc
        "desc_test.json[5]": "bad_value",  # ends at 21 s, starts at 31 s
    }
    published = sum(len(json.loads(p.read_text())) for p in FIXTURE.glob("desc_*.json"))
    assert len(rows) == published == 9
    # CEfOX4fYlsY again: read yields it as a Record; the converter rejects it as duplicate_id
    repeated, first = values["desc_test.json[6]"], values["desc_test.json[0]"]
    assert isinstance(repeated, Record) and repeated.uid == first.uid
    kept = [value for value in values.values() if isinstance(value, Record)]
    assert len(kept) + len(rejects) == published
    assert len(records()) == len(kept) - 1  # the repeated uid is one key


def test_reject_detail_names_the_field_and_value():
    details = {row.ref: row.value.detail for row in valor.read(FIXTURE, "test") if isinstance(row.value, Reject)}
    assert details["desc_test.json[3]"] == "no desc"
    assert details["desc_test.json[5]"] == (
        "video_id='WDI5peW22Jc_31.000_21.000' ends at 21.000 s, not after its start 31.000 s")


def test_split_reads_only_that_file():
    assert set(records("train")) == {"PzQfxFLLyM0_220.000_230.000"}
    assert set(records("test")) == {"CEfOX4fYlsY_20.000_30.000", "0g_-KI5NZ-E_30.000_40.000",
                                    "2vSF2Yh6o_k_20.000_30.000"}
    with pytest.raises(ValueError, match="desc_test.json is not the train split: pass desc_train.json"):
        list(valor.read(FIXTURE / "desc_test.json", "train"))


def test_a_split_whose_file_is_absent_is_an_error_naming_the_file():
    with pytest.raises(FileNotFoundError, match="desc_val.json"):
        records("val")


def test_a_null_video_id_is_missing_not_the_text_none(tmp_path):
    (tmp_path / "desc_train.json").write_text(json.dumps([{"video_id": None, "desc": "A bird sings."}]))
    assert [(row.ref, row.value) for row in valor.read(tmp_path, None)] == [
        ("desc_train.json[0]", Reject("missing_field", "video_id is null"))]

"""VGGSound source on a fixture of rows from the published vggsound.csv (no header)."""

from pathlib import Path

import pytest

from instruct_data.sources import vggsound
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "vggsound" / "vggsound.csv"


def test_a_row_becomes_a_record_with_the_release_clip_names():
    rows = list(vggsound.read(FIXTURE, None))
    assert rows[2].ref == "vggsound.csv:3"
    assert rows[2].value == Record(
        uid="-2Dm0VjW8oM_000001", clip_id="-2Dm0VjW8oM", label="pigeon, dove cooing",
        video="video/-2Dm0VjW8oM_000001.mp4", image="frames/-2Dm0VjW8oM_000001.jpg",
        audio="audio/-2Dm0VjW8oM_000001.wav", extra={"start_seconds": 1, "split": "test"})
    assert rows[2].value.frame_time is None  # the converter takes the middle frame


def test_two_clips_of_one_video_share_the_clip_id_but_not_the_uid():
    records = [row.value for row in vggsound.read(FIXTURE, None) if isinstance(row.value, Record)]
    wind = [(r.uid, r.clip_id, r.label) for r in records if r.clip_id == "B5KE79I2f-A"]
    assert wind == [("B5KE79I2f-A_000188", "B5KE79I2f-A", "wind noise"),
                    ("B5KE79I2f-A_000220", "B5KE79I2f-A", "wind noise")]


def test_every_row_is_a_record_or_a_reject():
    rows = list(vggsound.read(FIXTURE, None))
    rejects = {row.ref: row.value.reason for row in rows if isinstance(row.value, Reject)}
    assert rejects == {
        "vggsound.csv:6": "bad_value",  # start_seconds 18S
        "vggsound.csv:7": "empty_answer",  # no label
        "vggsound.csv:8": "missing_field",  # no youtube_id
        "vggsound.csv:9": "missing_field",  # no split column
        "vggsound.csv:10": "bad_value",  # split val
        "vggsound.csv:11": "bad_value",  # unquoted label with commas: 6 fields
    }
    assert rows[5].value.detail == "start_seconds='18S' is not whole seconds"
    assert len(rows) - len(rejects) == 5
    assert len(rows) == len(FIXTURE.read_text(encoding="utf-8").splitlines())


def test_split_keeps_the_rows_of_that_split_and_reports_unreadable_splits():
    train = list(vggsound.read(FIXTURE, "train"))
    assert [row.ref for row in train if isinstance(row.value, Record)] == ["vggsound.csv:2"]
    assert train[0].value.label == "waterfall burbling"
    assert {row.ref for row in train if isinstance(row.value, Reject)} == {
        "vggsound.csv:6", "vggsound.csv:7", "vggsound.csv:8", "vggsound.csv:9", "vggsound.csv:10",
        "vggsound.csv:11"}
    test = [row.value.uid for row in vggsound.read(FIXTURE, "test") if isinstance(row.value, Record)]
    assert test == ["---g-f_I2yQ_000001", "-2Dm0VjW8oM_000001", "B5KE79I2f-A_000188", "B5KE79I2f-A_000220"]


def test_val_is_refused_because_vggsound_has_none():
    with pytest.raises(ValueError, match="only the train and test splits"):
        list(vggsound.read(FIXTURE, "val"))


def test_a_start_that_isdigit_but_not_a_number_is_a_row_reject(tmp_path):
    (tmp_path / "vggsound.csv").write_text("--0PQM4-hqg,³0,waterfall burbling,train\n--0PQM4-hqg,30,waterfall,train\n",
                                           encoding="utf-8")
    rows = list(vggsound.read(tmp_path / "vggsound.csv", None))
    assert rows[0].value == Reject("bad_value", "start_seconds='³0' is not whole seconds")
    assert rows[1].value.uid == "--0PQM4-hqg_000030"

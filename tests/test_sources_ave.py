"""AVE source on a fixture in the AVE_Dataset layout: rows copied from YapengTian/AVE-ECCV18
data/Annotations.txt (Church bell&VWi2ENBuTbw&good&0&0 is a real zero-length row), plus three broken
rows; which split file holds which video is made up for the test."""

from pathlib import Path

import pytest

from instruct_data.sources import ave
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "ave"


def test_an_event_row_becomes_a_record_with_its_segment_and_the_frame_at_its_middle():
    rows = {row.ref: row.value for row in ave.read(FIXTURE, None)}
    assert rows["Annotations.txt:3"] == Record(
        uid="MH3m4AwEcRY_church_bell", clip_id="MH3m4AwEcRY", label="church bell", segments=[[6.0, 8.0]],
        duration=10.0, video="AVE/MH3m4AwEcRY.mp4", image="frames/MH3m4AwEcRY_church_bell.jpg",
        audio="audio/MH3m4AwEcRY.wav", frame_time=7.0, extra={"split": None})


def test_two_events_of_one_video_get_their_own_uid_and_share_the_clip():
    records = [row.value for row in ave.read(FIXTURE, None) if isinstance(row.value, Record)]
    speech = [r for r in records if r.clip_id == "-TCDqe327us"]
    assert [(r.uid, r.label) for r in speech] == [
        ("-TCDqe327us_male_speech_man_speaking", "male speech, man speaking"),
        ("-TCDqe327us_female_speech_woman_speaking", "female speech, woman speaking")]
    assert {r.audio for r in speech} == {"audio/-TCDqe327us.wav"}


def test_every_annotation_row_is_a_record_or_a_reject():
    rows = list(ave.read(FIXTURE, None))
    rejects = {row.ref: (row.value.reason, row.value.detail) for row in rows if isinstance(row.value, Reject)}
    assert rejects == {
        "Annotations.txt:4": ("segment_past_end", "[0, 0] is not a segment within the 10 s video"),
        "Annotations.txt:8": ("segment_past_end", "[0, 13] is not a segment within the 10 s video"),
        "Annotations.txt:9": ("bad_value", "StartTime/EndTime='zero'/'6' are not numbers"),
        "Annotations.txt:10": ("missing_field", "EndTime is missing or empty in 'Bark&BKRWEAYxHg0&good&0'"),
    }
    data_lines = len((FIXTURE / "Annotations.txt").read_text(encoding="utf-8").splitlines()) - 1  # the header
    assert len(rows) == data_lines == 9


def test_split_reads_its_set_file_with_or_without_a_header():
    train = list(ave.read(FIXTURE, "train"))
    assert [row.ref for row in train] == ["trainSet.txt:2", "trainSet.txt:3", "trainSet.txt:4", "trainSet.txt:5"]
    assert train[0].value.uid == "RUhOCu3LNXM_church_bell" and train[0].value.extra == {"split": "train"}
    assert [row.value.uid for row in ave.read(FIXTURE, "val")] == ["MH3m4AwEcRY_church_bell"]
    test = list(ave.read(FIXTURE, "test"))  # headerless, like the repo's copy of Annotations.txt
    assert [(row.ref, row.value.reason) for row in test] == [("testSet.txt:1", "segment_past_end"),
                                                             ("testSet.txt:2", "segment_past_end")]


def test_unknown_split_and_missing_directory_are_errors():
    with pytest.raises(ValueError, match="train, val, test"):
        list(ave.read(FIXTURE, "dev"))
    with pytest.raises(FileNotFoundError, match="AVE_Dataset directory"):
        list(ave.read(FIXTURE / "Annotations.txt", None))

"""LLP source on a fixture copied from YapengTian/AVVP-ECCV20 data/AVVP_eval_{audio,visual}.csv (five
test/val videos, with the real broken rows `9 0 Cheering` and `9 9 Speech`, and a row of VMTJRpjbE_150_160,
a video no split file lists) plus two made-up broken rows; the split files hold those videos' real lines."""

import re
from pathlib import Path

import pytest

from instruct_data.sources import llp
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "llp"


def _records(split=None) -> dict[str, tuple[str, Record]]:
    return {row.value.uid: (row.ref, row.value) for row in llp.read(FIXTURE, split) if isinstance(row.value, Record)}


def test_an_event_heard_and_seen_becomes_a_record_of_the_intersection():
    ref, baby = _records()["4YdbENYcIyE_23_33_baby_cry_infant_cry"]
    assert ref == "AVVP_eval_audio.csv:2; AVVP_eval_visual.csv:2"
    assert baby == Record(
        uid="4YdbENYcIyE_23_33_baby_cry_infant_cry", clip_id="4YdbENYcIyE", label="baby cry, infant cry",
        segments=[[0.0, 4.0]], duration=10.0,  # heard 0-4 s, seen 0-10 s
        visible_labels=["baby cry, infant cry"], video="video/4YdbENYcIyE.mp4",
        image="frames/4YdbENYcIyE_23_33_baby_cry_infant_cry.jpg", audio="audio/4YdbENYcIyE.wav",
        frame_time=2.0, extra={"filename": "4YdbENYcIyE_23_33", "split": None})


def test_several_segments_of_a_class_intersect_pairwise():
    ref, speech = _records()["8DF2PxdT5tE_390_400_speech"]
    assert ref == "AVVP_eval_audio.csv:8,9; AVVP_eval_visual.csv:7,8"
    assert speech.segments == [[7.0, 8.0], [9.0, 10.0]]  # heard 0-2 and 7-10, seen 7-8 and 9-10
    assert speech.frame_time == 7.5
    assert speech.visible_labels == ["basketball bounce", "speech"]
    _, speech = _records()["McVcuryKUp4_160_170_speech"]
    assert speech.segments == [[6.0, 8.0]]  # heard 3-8, seen 6-8


def test_visible_labels_list_every_class_seen_in_the_clip_even_if_silent():
    _, violin = _records()["CaC2xvdLC34_250_260_violin_fiddle"]
    assert violin.label == "violin, fiddle"
    assert violin.visible_labels == ["cello", "violin, fiddle"]  # the cello is seen, its audio row is broken


def test_every_row_of_both_files_is_in_a_record_or_a_reject():
    rows = list(llp.read(FIXTURE, None))
    rejects = {row.ref: (row.value.reason, row.value.detail) for row in rows if isinstance(row.value, Reject)}
    assert rejects == {
        "AVVP_eval_audio.csv:10": ("segment_past_end", "[9, 0] of Cheering is not a segment within the 10 s clip"),
        "AVVP_eval_audio.csv:11": ("segment_past_end", "[9, 9] of Speech is not a segment within the 10 s clip"),
        "AVVP_eval_audio.csv:13": ("bad_value", "onset/offset='0'/'nine' are not numbers"),
        "AVVP_eval_audio.csv:14": ("missing_field", "event_labels is missing or empty"),
        "AVVP_eval_audio.csv:4": ("not_audio_visual", "speech in KSRjje7GH44_60_70 is heard at [[0.0, 8.0]] "
                                                      "and seen at no time, never both"),
        "AVVP_eval_visual.csv:10": ("not_audio_visual", "cello in CaC2xvdLC34_250_260 is heard at no time "
                                                        "and seen at [[0.0, 10.0]], never both"),
        "AVVP_eval_audio.csv:15": ("not_audio_visual", "clapping in VMTJRpjbE_150_160 is heard at [[5.0, 10.0]] "
                                                       "and seen at no time, never both"),
    }
    assert len(rows) - len(rejects) == 7
    covered = sum(len(lines.split(",")) for row in rows for lines in re.findall(r":([\d,]+)", row.ref))
    data_lines = sum(len((FIXTURE / name).read_text(encoding="utf-8").splitlines()) - 1
                     for name in ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv"))
    assert covered == data_lines == 23


def test_split_keeps_the_videos_its_weak_label_file_lists():
    val = list(llp.read(FIXTURE, "val"))
    assert [row.ref for row in val] == ["AVVP_eval_audio.csv:10", "AVVP_eval_audio.csv:15",
                                        "AVVP_eval_audio.csv:7; AVVP_eval_visual.csv:6",
                                        "AVVP_eval_audio.csv:8,9; AVVP_eval_visual.csv:7,8"]
    assert {r.extra["split"] for _, r in _records("val").values()} == {"val"}
    assert {r.clip_id for _, r in _records("test").values()} == {"4YdbENYcIyE", "KSRjje7GH44", "McVcuryKUp4",
                                                                 "CaC2xvdLC34"}
    train = [(row.ref, row.value) for row in llp.read(FIXTURE, "train")]  # train videos have no segments
    assert train == [("AVVP_eval_audio.csv:15", Reject(  # only the row no split owns, as in every split
        "bad_value", "filename='VMTJRpjbE_150_160' is listed in none of "
                     "AVVP_train.csv, AVVP_val_pd.csv, AVVP_test_pd.csv"))]


def test_missing_eval_file_or_unknown_split_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="AVVP_eval_audio.csv"):
        list(llp.read(tmp_path, None))
    with pytest.raises(ValueError, match="train, val, test"):
        list(llp.read(FIXTURE, "dev"))


def test_a_row_with_an_extra_field_is_rejected_not_cut(tmp_path):
    header = "filename\tonset\toffset\tevent_labels\n"
    (tmp_path / "AVVP_eval_audio.csv").write_text(header + "4YdbENYcIyE_23_33\t0\t4\tBaby_cry_infant_cry\tSpeech\n",
                                                  encoding="utf-8")
    (tmp_path / "AVVP_eval_visual.csv").write_text(header, encoding="utf-8")
    assert [(row.ref, row.value) for row in llp.read(tmp_path, None)] == [("AVVP_eval_audio.csv:2", Reject(
        "bad_value", "row has 5 tab-separated fields, expected 4 (filename onset offset event_labels)"))]

"""AudioCaps source on a fixture copied from cdjkim/audiocaps dataset/{train,val,test}.csv."""

from pathlib import Path

import pytest

from instruct_data.sources import audiocaps
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "audiocaps"


def _data_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) - 1  # minus the header


def test_val_rows_of_one_clip_become_one_record_with_every_caption():
    rows = list(audiocaps.read(FIXTURE / "val.csv", None))
    by_uid = {row.value.uid: row for row in rows if isinstance(row.value, Record)}
    clip = by_uid["uYT5gxnyMWM_50"]
    assert clip.ref == "val.csv:3,7"  # the two rows are not adjacent in the published file
    assert clip.value == Record(
        uid="uYT5gxnyMWM_50", clip_id="uYT5gxnyMWM", audio="audio/uYT5gxnyMWM_50.wav",
        captions=["A young female speaks, followed by spraying and a female screaming",
                  "A girl speaks followed by a scream and more girls talking"],
        extra={"start_time": 50, "audiocap_ids": ["107890", "109274"], "split": "val"})
    assert by_uid["yVPZ2MNWpms_0"].value.captions == ["An airplane engine runs", "Distant humming of an engine"]
    assert by_uid["vfY_TJq7n_U_130"].value.image is None  # audio-only captioning


def test_every_val_row_is_a_caption_of_a_record_or_a_reject():
    rows = list(audiocaps.read(FIXTURE / "val.csv", None))
    rejects = {row.ref: (row.value.reason, row.value.detail) for row in rows if isinstance(row.value, Reject)}
    assert rejects == {
        "val.csv:5": ("missing_field", "youtube_id is empty"),
        "val.csv:6": ("bad_value", "start_time='57O' is not whole seconds"),
        "val.csv:8": ("empty_answer", "caption is empty (audiocap_id 107893)"),
        "val.csv:9": ("missing_field", "caption is missing"),
    }
    captions = sum(len(row.value.captions) for row in rows if isinstance(row.value, Record))
    assert captions == 5
    assert captions + len(rejects) == _data_lines(FIXTURE / "val.csv")


def test_directory_without_split_reads_train_val_and_test():
    rows = list(audiocaps.read(FIXTURE, None))
    records = [row.value for row in rows if isinstance(row.value, Record)]
    assert [r.extra["split"] for r in records].count("train") == 3
    assert [r.uid for r in records if r.extra["split"] == "test"] == ["7fmOlUlwoNg_20", "GOD8Bt5LfDE_100"]
    covered = sum(len(r.captions) for r in records) + sum(isinstance(row.value, Reject) for row in rows)
    assert covered == sum(_data_lines(FIXTURE / f"{s}.csv") for s in ("train", "val", "test"))


def test_split_picks_one_file_of_the_directory():
    rows = list(audiocaps.read(FIXTURE, "train"))
    assert [row.ref for row in rows] == ["train.csv:2", "train.csv:3", "train.csv:4"]
    assert rows[0].value.uid == "r1nicOVtvkQ_130"
    assert rows[0].value.captions == ["A woman talks nearby as water pours"]


def test_a_file_of_another_split_or_an_unknown_split_is_refused():
    with pytest.raises(ValueError, match="val.csv is not the test split"):
        list(audiocaps.read(FIXTURE / "val.csv", "test"))
    with pytest.raises(ValueError, match="got --split 'dev'"):
        list(audiocaps.read(FIXTURE, "dev"))


def test_a_directory_without_the_published_csvs_names_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no val.csv"):
        list(audiocaps.read(tmp_path, "val"))


def test_an_unquoted_comma_rejects_the_row_instead_of_cutting_its_caption(tmp_path):
    (tmp_path / "train.csv").write_text("audiocap_id,youtube_id,start_time,caption\n"
                                        "2,vfY_TJq7n_U,130,Rustling occurs, ducks quack and water splashes\n"
                                        '3,vfY_TJq7n_U,130,"Rustling occurs, ducks quack"\n', encoding="utf-8")
    rows = list(audiocaps.read(tmp_path / "train.csv", None))
    assert [(row.ref, row.value.reason, row.value.detail) for row in rows if isinstance(row.value, Reject)] == [
        ("train.csv:2", "bad_value", "row has 5 fields, expected 4 (audiocap_id,youtube_id,start_time,caption); "
                                     "a value holding commas must be quoted")]
    assert [row.value.captions for row in rows if isinstance(row.value, Record)] == [["Rustling occurs, ducks quack"]]


def test_a_start_time_that_isdigit_but_not_a_number_is_a_row_reject(tmp_path):
    (tmp_path / "train.csv").write_text("audiocap_id,youtube_id,start_time,caption\n2,vfY_TJq7n_U,²,Rustling\n",
                                        encoding="utf-8")
    [row] = audiocaps.read(tmp_path / "train.csv", None)
    assert (row.ref, row.value) == ("train.csv:2", Reject("bad_value", "start_time='²' is not whole seconds"))


def test_a_file_that_is_not_utf8_is_an_error_naming_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_bytes("audiocap_id,youtube_id,start_time,caption\n1,a,0,ok\n2,b,0,café\n"
                                         .encode("cp1252"))
    with pytest.raises(ValueError, match=r"train\.csv:3: byte 0xe9 is not UTF-8"):
        list(audiocaps.read(tmp_path / "train.csv", None))

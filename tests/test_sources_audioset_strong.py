"""AudioSet strong source on a fixture in the published TSV format (download_strong.html): the eval
rows start from the page's own example (s9d-2nhuJCQ_30000, Cheering 2.627-7.237 s); the label map
lines are copied from mid_to_display_name.tsv."""

import re
import shutil
from pathlib import Path

import pytest

from instruct_data.sources import audioset_strong
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "audioset_strong"
TSVS = ("audioset_train_strong.tsv", "audioset_eval_strong.tsv")


def _data_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) - 1  # minus the header


def _lines_in(ref: str) -> int:
    return len(re.sub(r"^[^:]+:", "", ref).split(","))


def test_rows_of_one_clip_and_class_merge_into_one_record_of_overlapping_segments():
    rows = list(audioset_strong.read(FIXTURE, "test"))
    cheering = next(row for row in rows if row.ref == "audioset_eval_strong.tsv:2,4")
    assert cheering.value == Record(
        uid="s9d-2nhuJCQ_30000_cheering", clip_id="s9d-2nhuJCQ", label="cheering",
        segments=[[2.627, 9.12]], duration=10.0,  # 2.627-7.237 and 6.950-9.120 overlap
        video="videos/s9d-2nhuJCQ_30000.mp4", image="frames/s9d-2nhuJCQ_30000_cheering.jpg",
        audio="audio/s9d-2nhuJCQ_30000.wav", frame_time=(2.627 + 9.12) / 2,
        extra={"mid": "/m/053hz1", "segment_id": "s9d-2nhuJCQ_30000", "split": "test"})


def test_disjoint_segments_stay_apart_and_the_frame_is_taken_in_the_longest():
    records = {row.value.uid: row for row in audioset_strong.read(FIXTURE, "test") if isinstance(row.value, Record)}
    music = records["YxlGt805lTA_30000_music"]
    assert music.ref == "audioset_eval_strong.tsv:6,7"
    assert music.value.segments == [[0.96, 1.92], [3.1, 4.88]]  # sorted, though the file lists 3.1 first
    assert music.value.frame_time == pytest.approx(3.99)
    assert records["s9d-2nhuJCQ_30000_inside_small_room"].value.label == "inside, small room"
    assert records["s9d-2nhuJCQ_30000_male_speech_man_speaking"].value.label == "male speech, man speaking"


def test_every_eval_row_is_in_a_record_or_a_reject():
    rows = list(audioset_strong.read(FIXTURE, "test"))
    rejects = {row.ref: (row.value.reason, row.value.detail) for row in rows if isinstance(row.value, Reject)}
    assert rejects == {
        "audioset_eval_strong.tsv:8": ("segment_past_end", "[7.500, 12.200] is not a segment within the 10 s clip"),
        "audioset_eval_strong.tsv:9": ("segment_past_end", "[5.000, 4.200] is not a segment within the 10 s clip"),
        "audioset_eval_strong.tsv:10": ("bad_value", "start/end_time_seconds='abc'/'4.200' are not numbers"),
        "audioset_eval_strong.tsv:11": ("bad_value", "label='/m/0xxxxx' is not in the label map"),
        "audioset_eval_strong.tsv:12": ("missing_field", "label is missing or empty"),
        "audioset_eval_strong.tsv:13": ("bad_value", "segment_id='YxlGt805lTA' is not <youtube_id>_<start_ms>"),
    }
    records = [row for row in rows if isinstance(row.value, Record)]
    assert len(records) == 4
    covered = sum(_lines_in(row.ref) for row in records) + len(rejects)
    assert covered == _data_lines(FIXTURE / "audioset_eval_strong.tsv")


def test_split_picks_the_train_or_the_eval_tsv_and_none_reads_both():
    train = [row.value.uid for row in audioset_strong.read(FIXTURE, "train")]
    assert train == ["vfY_TJq7n_U_130000_dog", "vfY_TJq7n_U_130000_bark", "-0RWZT-miFs_420000_car"]
    every = list(audioset_strong.read(FIXTURE, None))
    assert {row.ref.split(":")[0] for row in every} == set(TSVS)
    assert sum(_lines_in(row.ref) for row in every) == sum(_data_lines(FIXTURE / name) for name in TSVS)


def test_there_is_no_val_split_and_a_file_must_match_its_split():
    with pytest.raises(ValueError, match="train and test"):
        list(audioset_strong.read(FIXTURE, "val"))
    with pytest.raises(ValueError, match="not the train split"):
        list(audioset_strong.read(FIXTURE / "audioset_eval_strong.tsv", "train"))


def test_one_tsv_reads_the_label_map_beside_it_and_falls_back_to_class_labels_indices(tmp_path):
    shutil.copy(FIXTURE / "audioset_train_strong.tsv", tmp_path)
    with pytest.raises(FileNotFoundError, match="mid_to_display_name.tsv"):
        list(audioset_strong.read(tmp_path / "audioset_train_strong.tsv", None))
    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n72,/m/0bt9lr,"Dog"\n74,/m/05tny_,"Bark"\n'
        '300,/m/0k4j,"Car"\n', encoding="utf-8")
    labels = [row.value.label for row in audioset_strong.read(tmp_path / "audioset_train_strong.tsv", "train")]
    assert labels == ["dog", "bark", "car"]


def test_a_row_with_an_extra_field_is_rejected_not_cut(tmp_path):
    shutil.copy(FIXTURE / "mid_to_display_name.tsv", tmp_path)
    (tmp_path / "audioset_train_strong.tsv").write_text(
        "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
        "vfY_TJq7n_U_130000\t0.000\t3.412\t/m/0bt9lr\t/m/05tny_\n", encoding="utf-8")
    [row] = audioset_strong.read(tmp_path, None)
    assert (row.ref, row.value) == ("audioset_train_strong.tsv:2", Reject(
        "bad_value", "row has 5 tab-separated fields, expected 4 (segment_id start_time_seconds end_time_seconds label)"))


def test_a_label_map_row_with_an_unquoted_comma_names_its_line(tmp_path):
    shutil.copy(FIXTURE / "audioset_train_strong.tsv", tmp_path)
    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n72,/m/0bt9lr,"Dog"\n74,/m/05tny_,Bark, woof\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"class_labels_indices\.csv:3: expected index,mid,display_name"):
        list(audioset_strong.read(tmp_path, None))

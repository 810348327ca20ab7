"""The fixture is an avsbench_data/ root in the release layout. Its masks are 32 x 24 PNGs written by
tests/fixtures/avsbench/make_masks.py; the video names are real AVSBench ids. S4 has four rows:

    5csYYtS7Pck  train  one mask, foreground in rows 6-17, columns 4-11
    8Zo30kV5aiI  test   masks 1-2 good, 3 not a PNG, 4 missing, 5 empty
    G4TowkVcclw  train  no category
    0IStDugr5uA         split "holdout"

MS3 has two: 0meOlo03O3g (train, five palette masks, two objects) and CbQ2Ap7Phsw (no split)."""

from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from instruct_data.sources import avsbench
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "avsbench"
S4 = "Single-source/s4_meta_data.csv"
MS3 = "Multi-sources/ms3_meta_data.csv"


def rows(split=None, root=FIXTURE):
    return {row.ref: row.value for row in avsbench.read(root, split)}


def test_s4_mask_becomes_its_tight_box_with_the_category_as_label():
    assert rows()[f"{S4}:2 mask 1"] == Record(
        uid="s4/5csYYtS7Pck_1", clip_id="5csYYtS7Pck",
        image="Single-source/s4_data/visual_frames/train/dog_barking/5csYYtS7Pck/5csYYtS7Pck_1.png",
        audio="Single-source/s4_data/audio_wav/train/dog_barking/5csYYtS7Pck.wav",
        label="dog barking", boxes=[[4 / 32, 6 / 24, 12 / 32, 18 / 24]],  # [0.125, 0.25, 0.375, 0.75]
        extra={"subset": "s4", "frame": 1, "split": "train"})


def test_box_runs_to_one_past_the_last_foreground_pixel():
    assert rows()[f"{S4}:3 mask 1"].boxes == [[0.0, 0.0, 1.0, 1.0]]  # the whole frame
    assert rows()[f"{S4}:3 mask 2"].boxes == [[16 / 32, 12 / 24, 17 / 32, 13 / 24]]  # a single pixel


def test_ms3_palette_masks_give_one_box_around_all_sounding_objects_per_frame():
    values = rows()
    assert [values[f"{MS3}:2 mask {k}"].boxes for k in range(1, 6)] == [
        [[2 / 32, 2 / 24, (24 + k) / 32, 22 / 24]] for k in range(1, 6)]
    record = values[f"{MS3}:2 mask 5"]
    assert (record.uid, record.clip_id, record.label) == ("ms3/0meOlo03O3g_5", "0meOlo03O3g", None)
    assert record.image == "Multi-sources/ms3_data/visual_frames/0meOlo03O3g/0meOlo03O3g.mp4_5.png"
    assert record.audio == "Multi-sources/ms3_data/audio_wav/train/0meOlo03O3g.wav"


def test_bad_masks_and_rows_are_rejected_with_the_file_or_field_named():
    rejects = {ref: value for ref, value in rows().items() if isinstance(value, Reject)}
    assert {ref: r.reason for ref, r in rejects.items()} == {
        f"{S4}:3 mask 3": "bad_value",
        f"{S4}:3 mask 4": "missing_field",
        f"{S4}:3 mask 5": "empty_mask",
        f"{S4}:4": "missing_field",
        f"{S4}:5": "bad_value",
        f"{MS3}:3": "missing_field",
    }
    mask_4 = "Single-source/s4_data/gt_masks/test/ambulance_siren/8Zo30kV5aiI/8Zo30kV5aiI_4.png"
    assert rejects[f"{S4}:3 mask 4"].detail == f"mask {mask_4}: file not found"
    assert rejects[f"{S4}:4"].detail == "category is empty"
    assert rejects[f"{S4}:5"].detail == "split='holdout', expected one of train, val, test"
    assert rejects[f"{MS3}:3"].detail == "split is empty"


def test_every_expected_mask_and_every_bad_csv_row_is_one_row():
    # S4 train: 1 mask, S4 test: 5, MS3: 5; plus one row per bad CSV line (two in S4, one in MS3).
    values = rows().values()
    assert len(values) == 1 + 5 + 5 + 3
    assert Counter(type(value).__name__ for value in values) == {"Record": 8, "Reject": 6}


def test_split_keeps_its_videos_and_the_rows_whose_split_is_unknown():
    unknown = {f"{S4}:5", f"{MS3}:3"}
    assert set(rows("train")) == {f"{S4}:2 mask 1", f"{S4}:4"} | {f"{MS3}:2 mask {k}" for k in range(1, 6)} | unknown
    assert set(rows("test")) == {f"{S4}:3 mask {k}" for k in range(1, 6)} | unknown
    assert set(rows("val")) == unknown


def test_either_subset_may_be_absent(tmp_path):
    (tmp_path / "Single-source").mkdir()
    (tmp_path / S4).write_text("name,start_time,category,split\n5csYYtS7Pck,0,dog_barking,train\n")
    assert rows(root=tmp_path) == {f"{S4}:2 mask 1": Reject(
        "missing_field", "mask Single-source/s4_data/gt_masks/train/dog_barking/5csYYtS7Pck/5csYYtS7Pck_1.png: "
                         "file not found")}


def test_a_root_without_either_csv_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="avsbench_data/ root"):
        rows(root=tmp_path)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="train, val, test"):
        rows("dev")


def test_a_csv_without_the_published_header_is_refused(tmp_path):
    (tmp_path / "Single-source").mkdir()
    (tmp_path / S4).write_text("5csYYtS7Pck,0,dog_barking,train\n")
    with pytest.raises(ValueError, match="expected name, category, split in its header"):
        rows(root=tmp_path)


def test_a_mask_path_that_leaves_the_root_is_rejected_before_it_is_opened(tmp_path):
    root = tmp_path / "avsbench_data"
    (root / "Single-source").mkdir(parents=True)
    (root / S4).write_text("name,start_time,category,split\nevil,0,../../../../../outside,train\n")
    outside = tmp_path / "outside" / "evil" / "evil_1.png"  # where the row's mask path leads
    outside.parent.mkdir(parents=True)
    Image.new("L", (4, 4), 255).save(outside)
    assert rows(root=root) == {f"{S4}:2 mask 1": Reject(
        "path_escape", f"mask Single-source/s4_data/gt_masks/train/../../../../../outside/evil/evil_1.png: leaves the "
                       f"dataset root {root} (name='evil', category='../../../../../outside')")}


def test_a_row_with_an_unquoted_comma_is_rejected(tmp_path):
    (tmp_path / "Single-source").mkdir()
    (tmp_path / S4).write_text("name,start_time,category,split\n5csYYtS7Pck,0,dog,barking,train\n")
    assert rows(root=tmp_path) == {f"{S4}:2": Reject(
        "bad_value", "row has 5 fields, expected 4 (name,start_time,category,split); a value holding commas must be quoted")}

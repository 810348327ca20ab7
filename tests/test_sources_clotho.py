"""Clotho source on a fixture in the published clotho_captions_<split>.csv format (Zenodo 4783391)."""

from pathlib import Path

import pytest

from instruct_data.sources import clotho
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "clotho"
EVALUATION = FIXTURE / "clotho_captions_evaluation.csv"


def test_a_row_becomes_a_record_with_five_captions_and_its_split_folder():
    rows = list(clotho.read(FIXTURE / "clotho_captions_development.csv", None))
    assert rows[0].ref == "clotho_captions_development.csv:2"
    assert rows[0].value == Record(
        uid="Distorted AM Radio noise.wav", clip_id="Distorted AM Radio noise.wav",
        audio="development/Distorted AM Radio noise.wav",
        captions=["A muddled noise of broken channel of the TV",
                  "A television blares the rhythm of a static TV.",
                  "Loud television static dips in and out of focus",
                  "The loud buzz of static constantly changes pitch and volume.",
                  "heavy static and the beginnings of a signal on a transistor radio"],
        extra={"split": "train"})


def test_quoted_captions_keep_their_commas():
    santa = next(iter(clotho.read(EVALUATION, "test"))).value
    assert santa.audio == "evaluation/Santa Motor.wav"
    assert santa.captions[4] == "While rhythmically punching or stamping, a machine whines and squeals."


def test_every_row_is_a_record_or_a_reject():
    rows = list(clotho.read(FIXTURE, None))
    rejects = {row.ref: (row.value.reason, row.value.detail) for row in rows if isinstance(row.value, Reject)}
    assert rejects == {
        "clotho_captions_development.csv:3": ("missing_field", "file_name is empty"),
        "clotho_captions_evaluation.csv:4": ("empty_answer", "caption_3 is empty for 'toy rattle 2.wav'"),
        "clotho_captions_evaluation.csv:5": ("missing_field", "caption_3 is missing for 'Blade Big.wav'"),
    }
    records = [row.value for row in rows if isinstance(row.value, Record)]
    assert len(records) == 3
    data_rows = sum(len(path.read_text(encoding="utf-8").splitlines()) - 1 for path in FIXTURE.glob("*.csv"))
    assert len(records) + len(rejects) == data_rows == 6


def test_split_picks_its_file_and_a_missing_one_is_named():
    train = [row.ref for row in clotho.read(FIXTURE, "train")]
    assert train == ["clotho_captions_development.csv:2", "clotho_captions_development.csv:3"]
    with pytest.raises(FileNotFoundError, match=r"holds no clotho_captions_<validation>\.csv"):
        list(clotho.read(FIXTURE, "val"))


def test_a_file_of_another_split_or_an_unpublished_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="clotho_captions_evaluation.csv is not the train split"):
        list(clotho.read(EVALUATION, "train"))
    renamed = tmp_path / "captions.csv"
    renamed.write_text(EVALUATION.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValueError, match="the published name"):
        list(clotho.read(renamed, None))


def test_an_unquoted_comma_rejects_the_row_instead_of_shifting_its_captions(tmp_path):
    path = tmp_path / "clotho_captions_development.csv"
    path.write_text("file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
                    "Santa Motor.wav,A machine whines, and squeals.,c2,c3,c4,c5\n", encoding="utf-8")
    [row] = clotho.read(path, None)
    assert (row.ref, row.value.reason) == ("clotho_captions_development.csv:2", "bad_value")
    assert row.value.detail.startswith("row has 7 fields, expected 6 (file_name,caption_1,")

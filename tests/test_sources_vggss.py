"""The fixture holds nine rows in the published vggss.json format. Rows 0-5 are real rows: 0-3 are good,
and 4-5 are two of the 18 broken rows of the published file. Rows 6-8 are real rows broken on purpose."""

from collections import Counter
from pathlib import Path

import pytest

from instruct_data.sources import vggss
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "vggss" / "vggss.json"


def rows(split=None):
    return list(vggss.read(FIXTURE, split))


def test_clip_becomes_a_record_with_its_box_label_and_vggsound_media():
    row = rows()[0]
    assert row.ref == "vggss.json[0]"
    assert row.value == Record(uid="zpWuikVorYg_000032", clip_id="zpWuikVorYg", image="frames/zpWuikVorYg_000032.jpg",
                               audio="audio/zpWuikVorYg_000032.wav", video="video/zpWuikVorYg_000032.mp4",
                               label="elk bugling", boxes=[[0.403125, 0.253125, 0.6, 0.75]],
                               extra={"start_seconds": 32})


def test_every_sounding_object_keeps_its_box():
    record = rows()[1].value
    assert record.boxes == [[0.121875, 0.171875, 0.6, 0.853125], [0.765625, 0.275, 0.984375, 0.565625]]
    assert len(rows()[2].value.boxes) == 3


def test_youtube_id_with_underscore_is_split_from_the_start_seconds():
    record = rows()[2].value
    assert (record.uid, record.clip_id, record.extra) == ("RDG7jY7P_8M_000088", "RDG7jY7P_8M", {"start_seconds": 88})


def test_class_name_is_kept_as_published_words():
    assert rows()[3].value.label == "police car (siren)"


def test_bad_rows_are_rejected_with_the_field_named():
    rejects = {row.ref: row.value for row in rows() if isinstance(row.value, Reject)}
    assert {ref: r.reason for ref, r in rejects.items()} == {
        "vggss.json[4]": "box_outside_image",  # published corner at -2.88e16
        "vggss.json[5]": "box_outside_image",  # published box of zero height (y1 == y2 == 1.0)
        "vggss.json[6]": "missing_field",
        "vggss.json[7]": "bad_value",
        "vggss.json[8]": "bad_value",
    }
    assert "-2.8823037615171176e+16" in rejects["vggss.json[4]"].detail
    assert rejects["vggss.json[6]"].detail == "class is missing or empty"
    assert "'gEvCUcZ6w88'" in rejects["vggss.json[7]"].detail
    assert "[0.03125, 0.3625, 0.36875]" in rejects["vggss.json[8]"].detail


def test_every_row_is_accounted_for():
    kinds = Counter("record" if isinstance(row.value, Record) else "reject" for row in rows())
    assert kinds == {"record": 4, "reject": 5}
    assert [row.ref for row in rows()] == [f"vggss.json[{i}]" for i in range(9)]


def test_every_row_is_a_test_row_and_another_split_is_refused():
    assert rows("test") == rows()
    for split in ("train", "val"):  # the benchmark would leak into training data
        with pytest.raises(ValueError, match=f"VGG-SS is a test benchmark.*--split {split}"):
            rows(split)


def test_missing_file_names_where_it_is_published(tmp_path):
    with pytest.raises(FileNotFoundError, match="hche11/Localizing-Visual-Sounds-the-Hard-Way"):
        list(vggss.read(tmp_path / "vggss.json", None))


def test_a_boolean_in_a_box_is_a_bad_value_not_a_coordinate(tmp_path):
    (tmp_path / "vggss.json").write_text('[{"file": "abe_000001", "class": "x", "bbox": [[true, 0.1, 0.2, 0.3]]}]')
    [row] = vggss.read(tmp_path / "vggss.json", None)
    assert row.value == Reject("bad_value", "bbox: [True, 0.1, 0.2, 0.3] is not four numbers")

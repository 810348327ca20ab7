"""The fixture holds seven Annotations/<flickr_id>.xml files (real ids; boxes made up) in the layout the
public loaders read, and ten real lines of the published test_list.txt. 10000130166, 10007936344 and
9992947874 are good: the first two are in the test list, 9992947874 is not. The other four are broken
on purpose."""

from collections import Counter
from pathlib import Path

import pytest

from instruct_data.sources import flickr_soundnet
from instruct_data.sources.base import Record, Reject

FIXTURE = Path(__file__).parent / "fixtures" / "flickr_soundnet"


def rows(split=None, root=FIXTURE):
    return {row.ref: row.value for row in flickr_soundnet.read(root, split)}


def test_three_annotators_boxes_become_one_record_divided_by_256():
    assert rows()["Annotations/10000130166.xml"] == Record(
        uid="10000130166", clip_id="10000130166", image="frames/10000130166.jpg", audio="audio/10000130166.wav",
        boxes=[[40 / 256, 64 / 256, 168 / 256, 224 / 256],  # 0.15625, 0.25, 0.65625, 0.875
               [0.125, 0.1875, 0.625, 0.8125],
               [0.1875, 0.3125, 0.6875, 0.9375]],
        extra={"split": "test"})


def test_an_annotator_with_two_boxes_keeps_both():
    assert rows()["Annotations/10007936344.xml"].boxes == [
        [0.0, 0.0, 0.25, 0.5], [0.5, 0.0, 1.0, 0.5], [0.0, 0.0, 1.0, 0.5], [0.03125, 0.0625, 0.96875, 0.46875]]


def test_the_set_has_no_class_labels():
    assert all(value.label is None for value in rows().values() if isinstance(value, Record))


def test_bad_files_are_rejected_with_the_box_and_value_named():
    rejects = {ref: value for ref, value in rows().items() if isinstance(value, Reject)}
    assert {ref: r.reason for ref, r in rejects.items()} == {
        "Annotations/10008553263.xml": "box_outside_image",  # second annotator's xmax = 300 > 256
        "Annotations/10013411946.xml": "bad_value",  # xmin = "12.5px"
        "Annotations/10016382545.xml": "missing_field",  # no ymax
        "Annotations/10031203703.xml": "bad_value",  # the file is cut off
    }
    assert rejects["Annotations/10008553263.xml"].detail.startswith("bbox 2: [96.0, 16.0, 300.0, 124.0]")
    assert "'12.5px'" in rejects["Annotations/10013411946.xml"].detail
    assert "not well-formed XML" in rejects["Annotations/10031203703.xml"].detail


def test_every_file_is_one_row():
    values = rows().values()
    assert len(values) == len(list((FIXTURE / "Annotations").glob("*.xml"))) == 7
    assert Counter(type(value).__name__ for value in values) == {"Record": 3, "Reject": 4}


def test_test_split_is_the_test_list_and_train_the_other_annotated_images():
    assert set(rows("test")) == {f"Annotations/{i}.xml" for i in
                                 ("10000130166", "10007936344", "10008553263", "10013411946", "10016382545",
                                  "10031203703")}
    assert rows("train") == {"Annotations/9992947874.xml": Record(
        uid="9992947874", clip_id="9992947874", image="frames/9992947874.jpg", audio="audio/9992947874.wav",
        boxes=[[0.0, 0.5, 1.0, 1.0]], extra={"split": "train"})}


def test_val_is_refused_because_the_set_has_none():
    with pytest.raises(ValueError, match="only the train and test splits"):
        rows("val")


def test_a_split_without_test_list_names_where_to_get_it(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "9992947874.xml").write_text((FIXTURE / "Annotations" / "9992947874.xml").read_text())
    assert rows(root=tmp_path)["Annotations/9992947874.xml"].extra == {}
    with pytest.raises(FileNotFoundError, match="ardasnck/learning_to_localize_sound_source"):
        rows("test", root=tmp_path)


def test_a_test_list_starting_with_a_byte_order_mark_keeps_its_first_id(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "9992947874.xml").write_text((FIXTURE / "Annotations" / "9992947874.xml").read_text())
    (tmp_path / "test_list.txt").write_bytes("\ufeff9992947874.png\n".encode())
    assert rows(root=tmp_path)["Annotations/9992947874.xml"].extra == {"split": "test"}

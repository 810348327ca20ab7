"""The demo's image-tower pretraining: per-patch targets from boxes, a loss that falls, weights that
load back through `vision.weights` like real CLIP weights."""

import re

import pytest
import torch

from demo import encoders
from instruct_data.synth import world
from meerkat.config import get_preset
from meerkat.encoders.vision import CLIPVisionEncoder

RED_SQUARE, BLUE_STAR = world.CLASSES.index("red square"), world.CLASSES.index("blue star")


def test_patch_coverage_splits_each_box_over_the_patches_it_covers():
    objects = [{"class": "red square", "box": [0, 0, 32, 32]}, {"class": "blue star", "box": [48, 16, 80, 48]}]
    cover = encoders.patch_coverage(objects, (224, 224), 7).reshape(7, 7, -1)
    assert cover.shape == (7, 7, len(world.CLASSES) + 1)
    assert cover[0, 0, RED_SQUARE] == 1 and cover[0, 0, -1] == 0
    # the star's box straddles patches (row 0–1, column 1–2): a quarter of each
    for row, col in ((0, 1), (0, 2), (1, 1), (1, 2)):
        assert torch.isclose(cover[row, col, BLUE_STAR], torch.tensor(0.25)), (row, col)
        assert torch.isclose(cover[row, col, -1], torch.tensor(0.75))
    assert cover[3, 3, -1] == 1 and cover[3, 3, :-1].sum() == 0
    assert torch.allclose(cover.sum(-1), torch.ones(7, 7))


def test_patch_boxes_give_each_patch_the_box_of_the_object_covering_most_of_it():
    objects = [{"class": "red square", "box": [0, 0, 40, 32]}, {"class": "blue star", "box": [44, 0, 100, 30]}]
    boxes = encoders.patch_boxes(objects, (224, 224), 7).reshape(7, 7, 4)
    square, star = torch.tensor([0, 0, 40, 32]) / 224, torch.tensor([44, 0, 100, 30]) / 224
    assert torch.allclose(boxes[0, 0], square)
    # column 1 (32–64 px): the square covers 8 px of it, the star 20 → the star's box
    assert torch.allclose(boxes[0, 1], star) and torch.allclose(boxes[0, 3], star)
    # column 3 (96–128 px): the star covers 4 of 32 px × 30 of 32 rows ≈ 0.12 ≥ BOX_SHARE; row 1: nothing
    assert boxes[1].isnan().all() and boxes[0, 4:].isnan().all()
    assert encoders.patch_boxes([], (224, 224), 7).isnan().all()


def test_patch_loss_adds_the_box_error_only_where_a_box_is_known():
    classes = len(world.CLASSES) + 1
    coverage = torch.zeros(1, 2, classes)
    coverage[..., -1] = 1
    boxes = torch.tensor([[[0.1, 0.2, 0.3, 0.4], [float("nan")] * 4]])
    outputs = torch.zeros(1, 2, classes + 4)
    outputs[0, :, classes - 1] = 20.0  # background, confidently: class loss ~0
    outputs[0, 0, classes:] = torch.tensor([0.1, 0.2, 0.3, 0.6])  # one edge 0.2 off
    outputs[0, 1, classes:] = 9.0  # no box there: not counted
    expected = encoders.BOX_WEIGHT * 0.2 / 4
    assert encoders.patch_loss(outputs, coverage, boxes).item() == pytest.approx(expected, abs=1e-6)
    assert encoders.box_error(outputs[..., classes:], boxes) == pytest.approx(0.05)


@pytest.mark.parametrize("transpose, flip_x, flip_y", [(True, False, False), (False, True, False), (False, False, True),
                                                      (True, True, True)])
def test_dihedral_moves_targets_with_the_pixels(transpose, flip_x, flip_y):
    objects = [{"class": "red square", "box": [10, 40, 70, 100]}, {"class": "blue star", "box": [120, 150, 210, 200]}]
    pixels = torch.zeros(1, 3, 224, 224)
    for obj, value in zip(objects, (1.0, 2.0)):
        x1, y1, x2, y2 = obj["box"]
        pixels[..., y1:y2, x1:x2] = value

    def moved(box):  # the same transform on a pixel box
        x1, y1, x2, y2 = box
        if transpose:
            x1, y1, x2, y2 = y1, x1, y2, x2
        if flip_x:
            x1, x2 = 224 - x2, 224 - x1
        if flip_y:
            y1, y2 = 224 - y2, 224 - y1
        return [x1, y1, x2, y2]

    turned = [dict(obj, box=moved(obj["box"])) for obj in objects]
    x, cover, boxes = encoders.dihedral(pixels, encoders.patch_coverage(objects, (224, 224), 7)[None],
                                        encoders.patch_boxes(objects, (224, 224), 7)[None], transpose, flip_x, flip_y)
    assert torch.allclose(cover[0], encoders.patch_coverage(turned, (224, 224), 7))
    assert torch.allclose(boxes[0], encoders.patch_boxes(turned, (224, 224), 7), equal_nan=True)
    for obj, value in zip(turned, (1.0, 2.0)):
        x1, y1, x2, y2 = obj["box"]
        assert (x[0, :, y1:y2, x1:x2] == value).all()


def test_patch_accuracy_scores_object_colour_and_shape_on_mostly_covered_patches():
    classes = len(world.CLASSES)
    targets = torch.zeros(1, 5, classes + 1)
    targets[0, :, -1] = 1  # background everywhere, then three patches mostly covered by a red square
    for patch in (0, 1, 2):
        targets[0, patch, RED_SQUARE], targets[0, patch, -1] = 0.75, 0.25
    targets[0, 3, BLUE_STAR], targets[0, 3, -1] = 0.4, 0.6  # under half covered: not scored
    scores = torch.zeros(1, 5, classes + 1)
    scores[0, 0, RED_SQUARE] = 1  # right
    scores[0, 1, world.CLASSES.index("red star")] = 1  # colour right, shape wrong
    scores[0, 2, -1] = 1  # missed: called background
    assert encoders.patch_accuracy(scores, targets) == {"patches": 3, "found": pytest.approx(2 / 3), "colour": 1.0,
                                                        "shape": 0.5}


def test_pretraining_lowers_the_patch_loss_and_saves_loadable_clip_weights(tmp_path, capsys):
    world.generate(tmp_path / "world", 16, seed=3, workers=1)
    cfg = get_preset("small")
    torch.manual_seed(cfg.seed)
    tower = CLIPVisionEncoder(cfg.vision)
    pixels, coverage, boxes = encoders.load_split(tmp_path / "world", tower)
    assert pixels.shape[1:] == (3, 224, 224) and coverage.shape == (len(pixels), 49, len(world.CLASSES) + 1)
    assert boxes.shape == (len(pixels), 49, 4) and (~boxes.isnan()).any()
    before = tower(pixels[:2])
    losses, head = encoders.pretrain(tower, pixels, coverage, boxes, epochs=10)
    assert losses[-1] < 0.8 * losses[0], losses

    encoders.main(["--world", str(tmp_path / "world"), "--out", str(tmp_path / "towers"), "--epochs", "10"])
    val = re.search(r"val \((\d+) scenes, (\d+) object patches\): object found ([\d.]+)%; of those, colour right "
                    r"([\d.]+)%, shape right ([\d.]+)%; box edges off by ([\d.]+) of the image", capsys.readouterr().out)
    assert val and int(val[1]) >= 1 and int(val[2]) >= 1 and all(0 <= float(x) <= 100 for x in val.groups()[2:5])
    assert 0 < float(val[6]) < 0.5
    cfg.vision.weights = str(tmp_path / "towers" / "vision.safetensors")
    loaded = CLIPVisionEncoder(cfg.vision)
    loaded.load_weights(cfg.vision.weights)
    after = loaded(pixels[:2])
    assert torch.allclose(after, tower(pixels[:2]), atol=1e-5)  # same seed, data and steps: same tower
    assert not torch.allclose(after, before, atol=1e-2)

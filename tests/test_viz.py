import numpy as np
from PIL import Image

from meerkat.viz import PREDICTED, TRUTH, draw_boxes, plot_segments


def test_boxes_are_drawn_where_they_say_in_their_colours(tmp_path):
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    out = tmp_path / "boxes.png"
    drawn = draw_boxes(image, predicted=[[0.5, 0.5, 1.0, 1.0]], truth=[[0.0, 0.0, 0.25, 0.5]], out=out)
    pixels = np.asarray(Image.open(out))
    assert tuple(pixels[0, 10]) == TRUTH and tuple(pixels[25, 0]) == TRUTH  # top and left edge of the truth box
    assert tuple(pixels[99, 150]) == PREDICTED and tuple(pixels[75, 199]) == PREDICTED  # bottom, right edge
    assert tuple(pixels[75, 150]) == (0, 0, 0)  # inside stays untouched
    assert drawn.size == (200, 100) and tuple(np.asarray(image)[0, 10]) == (0, 0, 0)  # the input is not modified


def test_segments_plot_is_written(tmp_path):
    rate = 16_000
    t = np.arange(rate * 4) / rate
    wave = np.where((t > 1) & (t < 2), np.sin(2 * np.pi * 880 * t), 0).astype(np.float32)
    out = plot_segments((wave, rate), predicted=[[1.1, 2.2]], truth=[[1.0, 2.0]], out=tmp_path / "s.png")
    image = Image.open(out)
    assert image.size[0] > 400 and out.stat().st_size > 5_000


def test_boxes_thinner_than_a_pixel_and_no_boxes_draw(tmp_path):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    drawn = np.asarray(draw_boxes(image, predicted=[[0.10, 0.10, 0.11, 0.11], [0.5, 0.5, 0.5, 0.5]], truth=None))
    assert tuple(drawn[6, 6]) == PREDICTED and tuple(drawn[32, 32]) == PREDICTED
    assert np.array_equal(np.asarray(draw_boxes(image, predicted=None)), image)


def test_segments_plot_is_a_png_at_the_path_given(tmp_path):
    wave = (np.zeros(16_000, dtype=np.float32), 16_000)
    for name in ("plot", "plot.jpg"):
        out = plot_segments(wave, predicted=[[0.2, 0.4]], out=tmp_path / name)
        assert out == tmp_path / name and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Bad and unusual input reaching the model: a clear error or a documented conversion."""

import numpy as np
import pytest
import soundfile as sf
import torch

from meerkat.media import MediaError
from meerkat.prompt import IGNORE_INDEX


def test_corrupt_image_file_is_named(tiny_model, tmp_path, arig_turns, tone):
    path = tmp_path / "frame.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(MediaError, match="frame.jpg"):
        tiny_model.processor.encode(arig_turns, image=path, audio=tone)


def test_unreadable_audio_file_is_named(tiny_model, tmp_path, arig_turns, image):
    path = tmp_path / "clip.wav"
    path.write_bytes(b"RIFF garbage")
    with pytest.raises(MediaError, match="clip.wav"):
        tiny_model.processor.encode(arig_turns, image=image, audio=path)


@pytest.mark.parametrize(("rate", "channels", "subtype"), [(16_000, 1, "PCM_16"), (44_100, 2, "PCM_16"), (48_000, 1, "PCM_U8")])
def test_audio_files_are_converted_to_one_48k_mono_clip(tiny_model, tmp_path, arig_turns, image, rate, channels, subtype):
    t = np.arange(rate * 2) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "a.wav"
    sf.write(path, np.stack([wave] * channels, axis=1), rate, subtype=subtype)
    item = tiny_model.processor.encode(arig_turns, image=image, audio=path)
    assert item["audio_values"].shape == (1, 480_000) and item["audio_values"].dtype == torch.float32
    assert item["audio_values"][0, : 96_000 - 48].abs().max() == pytest.approx(0.5, abs=0.02)
    assert item["audio_values"][0, 96_100:].abs().max() == 0  # zero padding after 2 s


def test_silent_audio_is_valid_and_gives_finite_losses(tiny_model, arig_turns, image):
    p = tiny_model.processor
    batch = p.collate([p.encode(arig_turns, image=image, audio=(np.zeros(48_000, np.float32), 48_000), box=[0.1, 0.2, 0.4, 0.6])])
    out = tiny_model(**batch)
    assert all(torch.isfinite(x) for x in (out.loss, out.lm_loss, out.ot_loss, out.ac_loss))


@pytest.mark.parametrize("box", [[0.1, 0.2, 1.4, 0.6], [-0.1, 0.2, 0.4, 0.6], [0.5, 0.2, 0.4, 0.6]])
def test_box_outside_unit_square_or_reversed_is_an_error(tiny_model, arig_turns, image, tone, box):
    with pytest.raises(ValueError, match="boxes must be normalised"):
        tiny_model.processor.encode(arig_turns, image=image, audio=tone, box=box)


@pytest.mark.parametrize("box", [[0.3, 0.2, 0.3, 0.8], [0.1, 0.5, 0.4, 0.5]])
def test_a_box_without_area_is_an_error_naming_it(tiny_model, arig_turns, image, tone, box):
    with pytest.raises(ValueError, match=rf"box \[{box[0]}, .* has no area"):
        tiny_model.processor.encode(arig_turns, image=image, audio=tone, box=box)


def test_media_without_placeholder_and_placeholder_without_media_are_errors(tiny_model, arig_turns, image, tone):
    with pytest.raises(ValueError, match="holds 1 <audio> placeholder"):
        tiny_model.processor.encode(arig_turns, image=image)
    text_only = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."}]
    with pytest.raises(ValueError, match="exactly one <image> placeholder"):
        tiny_model.processor.encode(text_only, image=image)


def test_long_audio_is_rejected_by_default_and_chunked_when_asked(tiny_model, arig_turns, image):
    long_audio = (np.full(48_000 * 15, 0.1, np.float32), 48_000)
    with pytest.raises(MediaError, match="15.00 s, longer than the 10.00 s clip"):
        tiny_model.processor.encode(arig_turns, image=image, audio=long_audio)
    p = tiny_model.processor
    p.audio.on_long = "chunk"
    try:
        item = p.encode(arig_turns, image=image, audio=long_audio)
    finally:
        p.audio.on_long = "reject"
    assert item["audio_values"].shape == (2, 480_000)
    assert (item["input_ids"] == tiny_model.audio_token_id).sum() == 2 * 16
    out = tiny_model(**p.collate([item]))  # two clips in one row: LM loss, no OT/AC pairing
    assert torch.isfinite(out.lm_loss) and out.ot_loss.item() == 0.0


def test_collate_pads_right_for_training_and_left_for_generation(tiny_model, arig_turns, image, tone):
    p = tiny_model.processor
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    items = [p.encode(arig_turns, image=image, audio=tone), p.encode(short)]
    right, left = p.collate(items), p.collate(items, padding_side="left")
    n = len(items[1]["input_ids"])
    assert right["attention_mask"][1].tolist() == [1] * n + [0] * (right["input_ids"].shape[1] - n)
    assert left["attention_mask"][1].tolist() == [0] * (left["input_ids"].shape[1] - n) + [1] * n
    assert torch.equal(left["input_ids"][1, -n:], items[1]["input_ids"])
    assert right["pixel_values"].shape == (1, 3, 224, 224) and right["audio_values"].shape == (1, 480_000)


def test_pack_rows_lays_rows_out_for_the_fewest_padded_slots():
    from meerkat.processor import pack_rows

    assert pack_rows([3, 7, 5, 2, 4], capacity=12) == [[1], [2, 3], [4, 0]]  # 7 | 5+2 | 4+3: no padding
    assert pack_rows([130] * 8, capacity=512) == [[0, 4], [1, 5], [2, 6], [3, 7]]  # not 3 rows padded to 390
    assert pack_rows([6, 6, 6], capacity=10) == [[0], [1], [2]]  # 18 tokens fit 2 rows of 10 only in sum
    assert pack_rows([5], capacity=100) == [[0]]
    with pytest.raises(ValueError, match="sample 1 has 11 tokens, more than a packed row of 10"):
        pack_rows([4, 11], capacity=10)


def test_pack_restarts_positions_per_sample_and_keeps_boxes_and_media_in_packed_order(tiny_model, image, tone):
    p = tiny_model.processor

    def sample(answer, box):
        turns = [{"role": "user", "content": "<image>\n<audio>\nWhere?"}, {"role": "assistant", "content": answer}]
        return p.encode(turns, image=image, audio=tone, box=box)

    short, long = sample("Here.", None), sample("Over there, by the red square on the left side.", [0.1, 0.2, 0.4, 0.6])
    n_short, n_long = len(short["input_ids"]), len(long["input_ids"])
    batch = p.pack([short, long, short], row_length=n_long + n_short)
    assert "attention_mask" not in batch
    # samples are numbered row-major; the longest goes first into the first row
    for k, item in enumerate([long, short, short]):
        where = batch["sample_index"] == k
        row = int(where.any(1).nonzero())
        assert torch.equal(batch["input_ids"][where], item["input_ids"])
        assert torch.equal(batch["labels"][where], item["labels"])
        assert batch["position_ids"][where].tolist() == list(range(len(item["input_ids"])))
        assert (batch["sample_index"][row, :where[row].nonzero()[0]] < k).all()  # contiguous, in order
    padding = batch["sample_index"] == -1
    assert batch["input_ids"][padding].eq(p.tokenizer.pad_token_id).all()
    assert (batch["labels"][padding] == IGNORE_INDEX).all()
    assert batch["box_mask"].tolist() == [True, False, False]
    assert torch.equal(batch["boxes"][0], torch.tensor([0.1, 0.2, 0.4, 0.6]))
    assert batch["pixel_values"].shape[0] == 3 and batch["audio_values"].shape[0] == 3

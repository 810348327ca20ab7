import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from meerkat.data import load_instructions
from meerkat.dataset import BadSampleError, InstructionDataset, LengthGroupedSampler, collate_encoded
from meerkat.prompt import IGNORE_INDEX


def test_sampler_is_deterministic_per_epoch_and_groups_lengths():
    lengths = [(i * 37) % 101 for i in range(400)]
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=3, group=10)
    first = sampler.batches()
    assert first == LengthGroupedSampler(lengths, 4, seed=3, group=10).batches()
    sampler.start_epoch(1)
    assert sampler.batches() != first
    assert sorted(i for b in first for i in b) == list(range(400))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first])
    assert spread < 10  # random batches of 4 would spread ~60


def test_sampler_shards_one_global_batch_over_processes_and_skips_on_resume():
    lengths = list(range(48))
    single, sharded = LengthGroupedSampler(lengths, 4, seed=1), LengthGroupedSampler(lengths, 2, seed=1, num_shards=2)
    assert [a + b for a, b in zip(sharded.batches()[::2], sharded.batches()[1::2])] == single.batches()
    sharded.start_epoch(0, skip=4)
    assert list(sharded) == sharded.batches()[4:] and len(sharded) == 24 - 4


@pytest.fixture
def rows(tmp_path):
    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "a.png")
    sf.write(tmp_path / "a.wav", np.zeros(4800, np.float32), 48_000)
    long_context = [{"role": "user", "content": "<image>\n<audio>\n" + "word " * 150},
                    {"role": "assistant", "content": "ok " * 5},
                    {"role": "user", "content": "And where is it?"},
                    {"role": "assistant", "content": "At [0.10, 0.20, 0.30, 0.40]."}]
    samples = [
        {"id": "good", "source": "t", "task": "arig", "image": "a.png", "audio": "a.wav",
         "conversations": [{"role": "user", "content": "<image>\n<audio>\nWhere?"},
                           {"role": "assistant", "content": "At [0.10, 0.20, 0.30, 0.40]."}],
         "target": {}, "grounding": {"boxes": [[0.1, 0.2, 0.3, 0.4]]}},
        {"id": "missing", "source": "t", "task": "arig", "image": "gone.png", "audio": "a.wav",
         "conversations": [{"role": "user", "content": "<image>\n<audio>\nWhere?"}, {"role": "assistant", "content": "Here."}],
         "target": {}},
        {"id": "long", "source": "t", "task": "avqa", "image": "a.png", "audio": "a.wav", "conversations": long_context,
         "target": {}},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    return load_instructions(tmp_path / "d.jsonl", cache_dir=tmp_path / "cache"), tmp_path


def test_samples_encode_with_their_box_and_media(tiny_model, rows):
    data, root = rows
    encoded = InstructionDataset(data, tiny_model.processor, root, max_length=512)[0]
    assert encoded.item["box"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4]) and not encoded.cut
    assert encoded.item["pixel_values"].shape == (3, 224, 224) and encoded.item["audio_values"].shape == (1, 480_000)


def test_a_bad_sample_is_named_or_skipped_and_counted(tiny_model, rows):
    data, root = rows
    with pytest.raises(BadSampleError, match=r"d\.jsonl:2: sample missing: no media file at .*gone.png.*--skip_bad_samples"):
        InstructionDataset(data, tiny_model.processor, root, max_length=512)[1]
    # the line of its file, not its index in the joined and filtered rows
    only_missing = data.filter(lambda row: row["id"] == "missing")
    with pytest.raises(BadSampleError, match=r"d\.jsonl:2: sample missing"):
        InstructionDataset(only_missing, tiny_model.processor, root, max_length=512)[0]
    dataset = InstructionDataset(data, tiny_model.processor, root, max_length=512, skip_bad_samples=True)
    batch = collate_encoded(tiny_model.processor)([dataset[0], dataset[1]])
    assert batch["skipped"].item() == 1 and batch["input_ids"].shape[0] == 1


def test_an_over_long_prompt_loses_context_never_the_answer(tiny_model, rows):
    data, root = rows
    full = InstructionDataset(data, tiny_model.processor, root, max_length=4096)[2]
    assert not full.cut
    limit = len(full.item["input_ids"]) - 10
    cut = InstructionDataset(data, tiny_model.processor, root, max_length=limit)[2]
    assert cut.cut and len(cut.item["input_ids"]) <= limit
    labels = cut.item["labels"]
    answer = tiny_model.tokenizer.decode(labels[labels != IGNORE_INDEX])
    assert answer.endswith("At [0.10, 0.20, 0.30, 0.40].</s>")
    ids = cut.item["input_ids"]
    assert (ids == tiny_model.image_token_id).sum() == 49  # the media stay in the kept context
    with pytest.raises(BadSampleError, match="even with the context cut to the last question"):
        InstructionDataset(data, tiny_model.processor, root, max_length=40)[2]


def test_a_prompt_without_system_prompt_is_cut_by_its_earliest_turns(tiny_model, rows):
    data, root = rows
    processor = dataclasses.replace(tiny_model.processor, system=None)
    full = InstructionDataset(data, processor, root, max_length=4096)[2]
    with_system = InstructionDataset(data, tiny_model.processor, root, max_length=4096)[2]
    assert not full.cut and len(full.item["input_ids"]) < len(with_system.item["input_ids"])
    cut = InstructionDataset(data, processor, root, max_length=len(full.item["input_ids"]) - 1)[2]
    assert cut.cut and len(cut.item["input_ids"]) < len(full.item["input_ids"]) - 1  # a whole turn went


def test_cutting_moves_placeholders_written_without_a_newline_once(tiny_model, tmp_path):
    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "a.png")
    sf.write(tmp_path / "a.wav", np.zeros(4800, np.float32), 48_000)
    turns = [{"role": "user", "content": "word " * 150}, {"role": "assistant", "content": "ok"},
             {"role": "user", "content": "<image> <audio> Where is it?"}, {"role": "assistant", "content": "There."}]
    sample = {"id": "later", "source": "t", "task": "avqa", "image": "a.png", "audio": "a.wav", "conversations": turns}
    (tmp_path / "d.jsonl").write_text(json.dumps(sample) + "\n")
    data = load_instructions(tmp_path / "d.jsonl", cache_dir=tmp_path / "cache")
    processor = dataclasses.replace(tiny_model.processor, system=None)
    cut = InstructionDataset(data, processor, tmp_path, max_length=200)[0]
    assert cut.cut and (cut.item["input_ids"] == tiny_model.image_token_id).sum() == 49

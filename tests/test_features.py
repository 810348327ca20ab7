import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from meerkat.config import get_preset
from meerkat.data import load_instructions
from meerkat.dataset import InstructionDataset, collate_encoded
from meerkat.features import FeatureCache
from train import extract_features


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from instruct_data.cli import main as data_cli

    out = tmp_path_factory.mktemp("synth")
    data_cli(["synth", "--out", str(out), "--n", "6", "--seed", "2"])
    return out


def test_cached_features_give_the_same_losses_as_media(world, tmp_path, tiny_model):
    extract_features.main(["--out", str(tmp_path / "f"), "--shard_size", "2", f"synth_dir={world}"])
    assert len(list((tmp_path / "f").glob("image-*.safetensors"))) >= 2  # shards roll over
    rows = load_instructions(world / "train.jsonl", cache_dir=tmp_path / "cache")
    cache = FeatureCache(tmp_path / "f", tiny_model.config)
    from_media = InstructionDataset(rows, tiny_model.processor, world, 512)
    from_cache = InstructionDataset(rows, tiny_model.processor, world, 512, features=cache)
    collate = collate_encoded(tiny_model.processor)
    indices = [0, 1, 2, 3]
    a = collate([from_media[i] for i in indices])
    b = collate([from_cache[i] for i in indices])
    assert "pixel_values" in a and "pixel_values" not in b and b["image_features"].shape[1:] == (49, 64)
    assert torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        out_a = tiny_model(**{k: v for k, v in a.items() if k not in ("skipped", "cut")})
        out_b = tiny_model(**{k: v for k, v in b.items() if k not in ("skipped", "cut")})
    for part in ("loss", "lm_loss", "ot_loss", "ac_loss"):
        assert getattr(out_b, part).item() == pytest.approx(getattr(out_a, part).item(), abs=1e-5), part


def test_a_cache_from_other_encoders_is_refused(world, tmp_path):
    extract_features.main(["--out", str(tmp_path / "f"), f"synth_dir={world}"])
    other = get_preset("tiny")
    other.audio = dataclasses.replace(other.audio, num_tokens=8)
    with pytest.raises(ValueError, match="made with other encoder settings"):
        FeatureCache(tmp_path / "f", other)
    with pytest.raises(FileNotFoundError, match="run train/extract_features.py"):
        FeatureCache(tmp_path / "nothing", other)


def test_features_keep_the_towers_dtype(world, tmp_path):
    extract_features.main(["--out", str(tmp_path / "f"), f"synth_dir={world}", "model.vision.dtype=bfloat16"])
    cfg = get_preset("tiny")
    cfg.vision.dtype = "bfloat16"
    cache = FeatureCache(tmp_path / "f", cfg)
    image, audio = (cache.get(kind, next(iter(cache.index[kind]))) for kind in ("image", "audio"))
    assert image.dtype == torch.bfloat16 and image.shape == (49, 64)
    assert audio.dtype == torch.float32 and audio.shape == (1, 16, 128)
    with pytest.raises(ValueError, match="made with other encoder settings"):
        FeatureCache(tmp_path / "f", get_preset("tiny"))  # float32 towers


def test_a_cache_follows_the_tower_weights_content_not_their_path(world, tmp_path, monkeypatch):
    import open_clip
    from safetensors.torch import save_file

    cfg = get_preset("tiny")
    weights = tmp_path / "towers" / "vision.safetensors"
    weights.parent.mkdir()
    save_file(open_clip.CLIP(**cfg.vision.model_cfg).state_dict(), str(weights))
    monkeypatch.chdir(tmp_path)
    extract_features.main(["--out", str(tmp_path / "f"), f"synth_dir={world}", "model.vision.weights=towers/vision.safetensors"])
    cfg.vision.weights = str(weights)  # the same file by its absolute path
    cache = FeatureCache(tmp_path / "f", cfg)
    assert cache.get("image", next(iter(cache.index["image"]))).shape == (49, 64)
    torch.manual_seed(7)
    save_file(open_clip.CLIP(**cfg.vision.model_cfg).state_dict(), str(weights))  # the tower retrained in place
    with pytest.raises(ValueError, match="made with other encoder settings"):
        FeatureCache(tmp_path / "f", cfg)


def test_a_truncated_shard_is_named(world, tmp_path):
    extract_features.main(["--out", str(tmp_path / "f"), f"synth_dir={world}"])
    shard = sorted((tmp_path / "f").glob("image-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    cache = FeatureCache(tmp_path / "f", get_preset("tiny"))
    image = next(path for path, name in cache.index["image"].items() if name == shard.name)
    with pytest.raises(ValueError, match=rf"feature shard .*{shard.name} is truncated"):
        cache.get("image", image)


def test_a_missing_media_file_is_one_error_line_naming_it(world, tmp_path):
    broken = tmp_path / "world"
    shutil.copytree(world, broken)
    image = sorted((broken / "images").iterdir())[0]
    image.unlink()
    run = subprocess.run([sys.executable, "train/extract_features.py", "--out", str(tmp_path / "f"), f"synth_dir={broken}"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: ") and image.name in run.stderr

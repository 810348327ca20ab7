import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from meerkat import MeerkatModel, get_preset
from meerkat.config import MeerkatConfig
from meerkat.encoders.audio import CLAP_WARNINGS, HTSATAudioEncoder
from meerkat.encoders.vision import CLIPVisionEncoder
from meerkat.model import build_encoders


def test_vision_tokens_are_the_patch_grid_with_optional_cls_first():
    cfg = get_preset("tiny").vision
    torch.manual_seed(0)
    plain = CLIPVisionEncoder(cfg).eval()
    with_cls = CLIPVisionEncoder(dataclasses.replace(cfg, use_cls=True)).eval()
    with_cls.load_state_dict(plain.state_dict())
    pixels = torch.randn(2, 3, 224, 224)
    patches, tokens = plain(pixels), with_cls(pixels)
    assert patches.shape == (2, 49, 64) and tokens.shape == (2, 50, 64)
    assert plain.num_tokens == 49 and with_cls.num_tokens == 50 and plain.grid_size == 7
    assert torch.allclose(tokens[:, 1:], patches)


def test_audio_tokens_are_time_ordered_pools_of_htsat_frames():
    encoder = HTSATAudioEncoder(get_preset("tiny").audio).eval()
    wave = torch.randn(2, 480_000) * 0.1
    tokens = encoder(wave)
    assert tokens.shape == (2, 16, 128)
    frames = encoder.htsat({"waveform": wave})["fine_grained_embedding"]  # (2, 1024, 128)
    assert torch.allclose(tokens[:, 3], frames[:, 3 * 64 : 4 * 64].mean(1), atol=1e-6)


def test_audio_of_the_wrong_length_is_a_clear_error():
    encoder = HTSATAudioEncoder(get_preset("tiny").audio)
    with pytest.raises(ValueError, match=r"must be \(batch, 480000\) = 10 s at 48000 Hz, got \(1, 16000\)"):
        encoder(torch.zeros(1, 16_000))


def test_cls_token_and_mlp_projector_work_end_to_end(batch):
    cfg = get_preset("tiny")
    cfg.vision.use_cls = True
    cfg.projector.kind = "mlp"
    model = MeerkatModel.build(cfg)
    assert [type(m).__name__ for m in model.vision_projector] == ["Linear", "GELU", "Linear"]
    p = model.processor
    turns = [{"role": "user", "content": "<image>\n<audio>\nWhere?"}, {"role": "assistant", "content": "There."}]
    item = p.encode(turns, image=torch.rand(64, 64, 3).numpy(), audio=(torch.zeros(4800).numpy(), 48_000), box=[0, 0, 1, 1])
    assert (item["input_ids"] == model.image_token_id).sum() == 50
    out = model(**p.collate([item]))
    assert all(torch.isfinite(x) for x in (out.lm_loss, out.ot_loss, out.ac_loss))


def test_building_never_imports_laion_clap_hub_code():
    """laion_clap/__init__ fetches text tokenizers from the hub; meerkat must not run it, hub or not."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # any hub request would fail (or hang in retries)
    code = ("import sys; from meerkat import MeerkatModel, get_preset; MeerkatModel.build(get_preset('tiny')); "
            "print(sorted(m for m in sys.modules if m.startswith('laion_clap')), 'clap_module.htsat' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[] True"


def test_building_the_audio_tower_shows_none_of_laion_clap_s_own_warnings():
    """laion-clap's deprecated imports and calls warn on every command's first build; not the user's code."""
    code = ("import torch; from meerkat import get_preset; from meerkat.encoders.audio import HTSATAudioEncoder; "
            "tower = HTSATAudioEncoder(get_preset('tiny').audio); "
            "print(tuple(tower(torch.zeros(1, tower.cfg.clip_samples)).shape) == (1, tower.num_tokens, tower.width))")
    result = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "True"
    for message in CLAP_WARNINGS:
        assert message not in result.stderr


def test_bfloat16_towers_give_bfloat16_tokens_close_to_float32():
    """`vision.dtype` / `audio.dtype` = bfloat16 (the meerkat-7b preset) stores and runs the frozen towers in
    bf16; the LLM-facing projectors take their tokens in their own dtype."""
    cfg = get_preset("tiny")
    bf16 = get_preset("tiny")
    bf16.vision.dtype = bf16.audio.dtype = "bfloat16"
    full, half = build_encoders(cfg), build_encoders(bf16)
    inputs = (torch.randn(2, 3, 224, 224), 0.1 * torch.randn(2, 480_000))
    for a, b, x in zip(full, half, inputs):
        assert {p.dtype for p in b.parameters()} == {torch.bfloat16}
        reference, tokens = a(x), b(x)  # float32 inputs: each tower casts them to its own dtype
        assert tokens.dtype == torch.bfloat16 and tokens.shape == reference.shape
        assert ((tokens.float() - reference).norm() / reference.norm()) < 0.02
    model = MeerkatModel.build(bf16)
    assert model.vision_projector[0].weight.dtype == torch.float32
    turns = [{"role": "user", "content": "<image>\n<audio>\nWhere?"}, {"role": "assistant", "content": "There."}]
    item = model.processor.encode(turns, image=torch.rand(64, 64, 3).numpy(), audio=(torch.zeros(4800).numpy(), 48_000),
                                  box=[0, 0, 1, 1])
    out = model(**model.processor.collate([item]))
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)


@pytest.mark.parametrize("part", ["vision", "audio", "llm"])
def test_an_unknown_dtype_is_an_error_naming_the_field(part):
    with pytest.raises(ValueError, match=rf"{part}.dtype: expected one of float32, bfloat16, float16, got 'bf16'"):
        MeerkatConfig.from_dict({part: {"dtype": "bf16"}})


def test_a_float16_audio_tower_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="audio.dtype: float16 overflows HTSAT's log-mel filterbank"):
        MeerkatConfig.from_dict({"audio": {"dtype": "float16"}})


def test_towers_compute_in_their_own_dtype_under_autocast():
    """Training runs under autocast (mixed_precision); the towers must still give what the feature cache,
    extracted without autocast, holds — and HTSAT's log-mel would overflow under float16 autocast."""
    vision, audio = build_encoders(get_preset("tiny"))
    pixels, wave = torch.rand(1, 3, 224, 224), 0.9 * torch.sin(torch.arange(audio.cfg.clip_samples) * 0.05)[None]
    for tower, x in ((vision, pixels), (audio, wave)):
        eager = tower(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = tower(x)
        assert autocast.dtype == torch.float32
        torch.testing.assert_close(autocast, eager)

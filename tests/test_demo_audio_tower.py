"""The demo's audio-tower pretraining: per-token class shares from events, a loss that falls, weights that
load back through `audio.checkpoint` like a LAION-CLAP checkpoint."""

import re

import pytest
import torch

from demo import audio_tower
from instruct_data.synth import world
from meerkat.config import get_preset
from meerkat.encoders.audio import HTSATAudioEncoder

RED_SQUARE, BLUE_STAR = world.CLASSES.index("red square"), world.CLASSES.index("blue star")


def test_token_activity_shares_each_event_over_the_tokens_it_covers():
    events = [{"class": "red square", "start": 0.0, "end": 1.0}, {"class": "red square", "start": 5.0, "end": 6.25},
              {"class": "blue star", "start": 0.5, "end": 2.5}]
    activity = audio_tower.token_activity(events, 10.0, 16)  # tokens of 0.625 s
    assert activity.shape == (16, len(world.CLASSES))
    assert activity[0, RED_SQUARE] == 1 and activity[1, RED_SQUARE] == pytest.approx(0.6)
    assert activity[8, RED_SQUARE] == 1 and activity[9, RED_SQUARE] == 1 and activity[2, RED_SQUARE] == 0
    assert activity[0, BLUE_STAR] == pytest.approx(0.2) and activity[3, BLUE_STAR] == 1 and activity[4, BLUE_STAR] == 0
    assert activity[:, [c for c in range(len(world.CLASSES)) if c not in (RED_SQUARE, BLUE_STAR)]].sum() == 0


def test_token_f1_counts_calls_on_tokens_sounding_over_half():
    activity = torch.tensor([[[0.6, 0.0], [0.4, 1.0]]])
    logits = torch.tensor([[[2.0, 1.0], [3.0, -1.0]]])  # calls: (0,0) right, (0,1) wrong, (1,0) wrong; (1,1) missed
    assert audio_tower.token_f1(logits, activity) == pytest.approx(2 * 1 / (3 + 2))


def test_pretraining_lowers_the_token_loss_and_saves_loadable_clap_weights(tmp_path, capsys):
    world.generate(tmp_path / "world", 12, seed=3, workers=1)
    cfg = get_preset("small")
    torch.manual_seed(cfg.seed)
    tower = HTSATAudioEncoder(cfg.audio)
    mels, activity = audio_tower.load_split(tmp_path / "world", tower)
    assert mels.shape[1:] == (1, 1001, 64) and activity.shape == (len(mels), 16, len(world.CLASSES))
    assert activity.amax() == 1 and 0 < activity.mean() < 0.5
    wave = torch.randn(2, cfg.audio.clip_samples) * 0.1
    before = tower(wave)
    losses, _ = audio_tower.pretrain(tower, mels, activity, epochs=10)
    assert losses[-1] < 0.8 * losses[0], losses

    audio_tower.main(["--world", str(tmp_path / "world"), "--out", str(tmp_path / "towers"), "--epochs", "10"])
    val = re.search(r"val \((\d+) clips\): class sounding per token F1 ([\d.]+)%", capsys.readouterr().out)
    assert val and int(val[1]) >= 1 and 0 <= float(val[2]) <= 100
    cfg.audio.checkpoint = str(tmp_path / "towers" / "audio.safetensors")
    loaded = HTSATAudioEncoder(cfg.audio)
    loaded.load_weights(cfg.audio.checkpoint)  # strict: every audio_branch.* key of HTSAT, nothing else
    after = loaded.eval()(wave)
    assert not torch.allclose(after, before, atol=1e-2)  # not the random-init tower of the same seed

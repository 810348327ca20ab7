import random

import pytest
import torch

from meerkat.checkpointing import (checkpoints, load_state, resolve_resume, rng_state, save_checkpoint,
                                   set_rng_state)


class _Model:
    def save_pretrained(self, path, state_dict=None):
        path.mkdir(parents=True)
        (path / "weights.safetensors").write_bytes(b"w")


def test_checkpoints_are_complete_and_only_the_last_k_are_kept(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, _Model(), {"step": step}, keep_last=2)
    assert [p.name for p in checkpoints(tmp_path)] == ["step_000020", "step_000030"]
    (tmp_path / ".step_000040.tmp").mkdir()  # a save that was killed half way
    (tmp_path / "step_000050").mkdir()  # no training state: incomplete
    assert resolve_resume(tmp_path, "latest").name == "step_000030"
    assert load_state(resolve_resume(tmp_path, str(tmp_path / "step_000020")))["step"] == 20


def test_resume_errors_say_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        resolve_resume(tmp_path, "latest")
    with pytest.raises(FileNotFoundError, match="training_state.pt missing"):
        resolve_resume(tmp_path, str(tmp_path))


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    random.seed(1)
    torch.manual_seed(1)
    save_checkpoint(tmp_path, 1, _Model(), {"rng": rng_state()}, keep_last=1)
    expected = (random.random(), torch.rand(3))
    random.seed(2)
    torch.manual_seed(2)
    set_rng_state(load_state(tmp_path / "step_000001")["rng"])
    assert random.random() == expected[0] and torch.equal(torch.rand(3), expected[1])

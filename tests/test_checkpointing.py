import pickle
import random

import pytest
import torch

from meerkat.checkpointing import (checkpoints, load_optimizer_shards, load_state, resolve_resume, rng_state,
                                   save_checkpoint, save_optimizer_shard, set_rng_state, start_checkpoint)


class _Model:
    def save_pretrained(self, path, state_dict=None):
        path.mkdir(parents=True, exist_ok=True)
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


def test_zero_optimizer_shards_load_weights_only_with_deepspeed_types_allowed_by_name(tmp_path):
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    root = tmp_path / "checkpoints"
    start_checkpoint(root, 4)
    for rank in range(2):  # what a ZeRO-2 optimizer's state_dict holds, in miniature
        save_optimizer_shard(root, 4, rank, {"loss_scaler": LossScaler(1.0), "zero_stage": ZeroStageEnum.gradients,
                                             "single_partition_of_fp32_groups": [torch.full((3,), float(rank))]})
    path = save_checkpoint(root, 4, _Model(), {"step": 4}, keep_last=1, started=True)
    shards = load_optimizer_shards(path, world_size=2)
    assert [float(s["single_partition_of_fp32_groups"][0][0]) for s in shards] == [0.0, 1.0]
    assert shards[1]["zero_stage"] == ZeroStageEnum.gradients and shards[0]["loss_scaler"].loss_scale == 1.0
    with pytest.raises(FileNotFoundError, match=r"optimizer_rank002.pt.*missing.*the process count"):
        load_optimizer_shards(path, world_size=3)
    torch.save({"anything": _Model()}, path / "optimizer_rank000.pt")  # a type nobody allowed
    with pytest.raises(pickle.UnpicklingError, match="_Model"):
        load_optimizer_shards(path, world_size=2)

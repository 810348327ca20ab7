"""The training recipe end to end, as users run it (subprocesses: each run is its own process)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from meerkat import MeerkatModel
from meerkat.data import load_instructions
from meerkat.dataset import InstructionDataset, collate_encoded

ROOT = Path(__file__).resolve().parent.parent
RECIPE = [str(ROOT / "train" / "sft.py"), "--config", str(ROOT / "train" / "configs" / "tiny_synth.yaml")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    subprocess.run([sys.executable, "-m", "instruct_data", "synth", "--out", str(out), "--n", "40", "--seed", "0"],
                   check=True, capture_output=True, cwd=ROOT)
    return out


def _run(world, out, *overrides, launcher=(sys.executable,), check=True):
    args = [*launcher, *RECIPE, f"synth_dir={world}", f"output_dir={out}", *overrides]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _metrics(out):
    return [json.loads(line) for line in open(out / "metrics.jsonl")]


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.slow
def test_thirty_steps_lower_every_loss_part_and_write_every_output(world, tmp_path):
    out = tmp_path / "run"
    _run(world, out, "max_steps=30", "save_every=10", "keep_last=2")
    log = _metrics(out)
    assert [e["step"] for e in log] == list(range(1, 31))
    assert _mean([e["loss"] for e in log[-10:]]) < _mean([e["loss"] for e in log[:10]])
    # Per-step values move with the batch; on one fixed batch of boxed samples every part must fall.
    final = MeerkatModel.from_pretrained(out / "final").eval()
    start = MeerkatModel.build(final.config).eval()  # the run's initial weights: random init is seeded
    rows = load_instructions(world / "train.jsonl")
    boxed = [i for i, task in enumerate(rows["task"]) if task == "arig"][:16]
    losses = {}
    for name, model in (("start", start), ("final", final)):
        dataset = InstructionDataset(rows, model.processor, world, 512)
        batch = collate_encoded(model.processor)([dataset[i] for i in boxed])
        batch.pop("skipped"), batch.pop("cut")
        with torch.no_grad():
            losses[name] = model(**batch)
    for part in ("loss", "lm_loss", "ot_loss", "ac_loss"):
        assert getattr(losses["final"], part) < getattr(losses["start"], part), part
    assert all(0 <= e["padding_share"] < 0.5 and e["tokens_per_s"] > 0 and e["grad_norm"] > 0 for e in log)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000020", "step_000030"]
    assert (out / "loss_curve.png").stat().st_size > 10_000 and (out / "config.yaml").is_file()
    assert final.config.llm.lora.r == 8


def _kill_after_checkpoint(args: list, checkpoint: Path) -> None:
    """Start a run and SIGKILL it, launcher and workers, once `checkpoint` is complete."""
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (checkpoint / "training_state.pt").is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    if process.poll() is not None:  # it ended first: the caller's step count says so
        return
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in tree:
        member.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=30)


def _assert_resume_continues(world, tmp_path, launcher: tuple, steps: int, save_every: int) -> tuple[Path, Path]:
    """An uninterrupted run and one killed after its first checkpoint, then resumed: same losses and lr."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    overrides = (f"max_steps={steps}", f"save_every={save_every}", "keep_last=3")
    _run(world, straight, *overrides, launcher=launcher)
    _kill_after_checkpoint([*launcher, *RECIPE, f"synth_dir={world}", f"output_dir={killed}", *overrides],
                           killed / "checkpoints" / f"step_{save_every:06d}")
    assert save_every <= len(_metrics(killed)) < steps, "the run was not killed between its first checkpoint and its end"
    result = _run(world, killed, *overrides, "resume_from=latest", launcher=launcher)
    resumed_at = re.search(r"resumed from .* at step (\d+)", result.stdout + result.stderr)
    assert resumed_at and int(resumed_at.group(1)) < steps, "it did not resume before the end"
    expected, resumed = _metrics(straight), _metrics(killed)
    assert [e["step"] for e in resumed] == list(range(1, steps + 1))
    for a, b in zip(expected, resumed):
        for part in ("loss", "lm_loss", "ot_loss", "ac_loss", "lr"):
            assert b[part] == pytest.approx(a[part], abs=1e-6), (a["step"], part)
    return straight, killed


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_same_loss_sequence(world, tmp_path):
    _assert_resume_continues(world, tmp_path, (sys.executable,), steps=40, save_every=4)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_a_resumed_run_draws_the_same_dropout_masks_in_every_process(world, tmp_path, processes):
    """LoRA dropout reads each process's RNG: a resume restores every process's own state, and reading the
    data draws nothing from it (the tiny preset has no dropout, so the SIGKILL tests do not see this)."""
    launcher = (sys.executable,) if processes == 1 else (
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "29532")
    overrides = ("max_steps=4", "save_every=2", "keep_last=3", f"batch_size={4 // processes}", "model.llm.lora.dropout=0.3")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _run(world, straight, *overrides, launcher=launcher)
    shutil.copytree(straight, resumed)  # as if killed after its step-2 checkpoint
    shutil.rmtree(resumed / "checkpoints" / "step_000004")
    _run(world, resumed, *overrides, f"resume_from={resumed / 'checkpoints' / 'step_000002'}", launcher=launcher)
    for a, b in zip(_metrics(straight), _metrics(resumed), strict=True):
        for part in ("loss", "grad_norm"):
            assert b[part] == pytest.approx(a[part], abs=1e-6), (a["step"], part)


@pytest.mark.slow
def test_a_run_resumed_with_more_steps_follows_the_longer_schedule(world, tmp_path):
    """The third README command: train on past the saved max_steps. The first resumed step trained at the
    old schedule's final rate (0) before the stretched cosine took over."""
    _run(world, tmp_path / "long", "max_steps=6", "warmup_steps=1")
    _run(world, tmp_path / "short", "max_steps=4", "warmup_steps=1", "save_every=4")
    _run(world, tmp_path / "short", "max_steps=6", "warmup_steps=1", "save_every=4", "resume_from=latest")
    long, short = _metrics(tmp_path / "long"), _metrics(tmp_path / "short")
    assert [e["step"] for e in short] == list(range(1, 7)) and short[3]["lr"] < long[3]["lr"]  # 4-step cosine
    assert [e["lr"] for e in short[4:]] == pytest.approx([e["lr"] for e in long[4:]], abs=1e-12)
    assert long[4]["lr"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("stage, port", [("zero2", 29541), ("zero3", 29542)])
def test_a_deepspeed_zero_run_killed_and_resumed_continues_the_same_loss_sequence(world, tmp_path, stage, port):
    """Under ZeRO each process saves its own optimizer partition; here 2 CPU processes (DeepSpeed's CPU
    accelerator over gloo), launched with the shipped accelerate config as users launch it."""
    import deepspeed  # noqa: F401  (`make test` installs it: fail, don't skip, without it)

    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "deepspeed_configs" / f"{stage}.yaml"), "--num_processes", "2", "--main_process_port", str(port))
    straight, killed = _assert_resume_continues(world, tmp_path, launcher, steps=12, save_every=4)
    assert {"optimizer_rank000.pt", "optimizer_rank001.pt"} <= {p.name for p in (killed / "checkpoints" / "step_000012").iterdir()}
    # the final weights are whole (ZeRO-3 gathers its parameter shards) and equal the uninterrupted run's
    a, b = (MeerkatModel.from_pretrained(out / "final").state_dict() for out in (straight, killed))
    trained = [k for k in a if "lora_" in k or "projector" in k]
    assert trained and all(torch.allclose(a[k], b[k], atol=1e-6) for k in trained)
    # without DeepSpeed there is no partitioned optimizer to put these shards back into: said, not crashed
    result = _run(world, tmp_path / "plain", "max_steps=16", f"resume_from={killed / 'checkpoints' / 'step_000012'}", check=False)
    assert result.returncode != 0 and "saved under DeepSpeed ZeRO" in result.stderr


@pytest.mark.slow
def test_two_processes_give_the_one_process_loss_for_the_same_global_batch(world, tmp_path):
    _run(world, tmp_path / "one", "max_steps=3", "batch_size=4")
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--main_process_port", "29531")
    _run(world, tmp_path / "two", "max_steps=3", "batch_size=2", launcher=launcher)
    assert len(_metrics(tmp_path / "two")) == 3
    for a, b in zip(_metrics(tmp_path / "one"), _metrics(tmp_path / "two")):
        # the schedule steps once per optimizer step however many processes there are
        for part in ("loss", "lm_loss", "ot_loss", "ac_loss", "grad_norm", "lr", "projector_lr"):
            assert b[part] == pytest.approx(a[part], rel=1e-5), (a["step"], part)


def test_packed_batches_train_like_padded_ones_with_less_padding(world, tmp_path):
    _run(world, tmp_path / "padded", "max_steps=3", "batch_size=8")
    _run(world, tmp_path / "packed", "max_steps=3", "batch_size=8", "packing=true")
    padded, packed = _metrics(tmp_path / "padded"), _metrics(tmp_path / "packed")
    for a, b in zip(padded, packed, strict=True):
        for part in ("loss", "lm_loss", "ot_loss", "ac_loss", "grad_norm"):
            assert b[part] == pytest.approx(a[part], rel=1e-4), (a["step"], part)
    # length-grouped batches are nearly even already; packing never pads more and here pads less once
    assert all(b["padding_share"] <= a["padding_share"] for a, b in zip(padded, packed))
    assert sum(b["padding_share"] for b in packed) < sum(a["padding_share"] for a in padded)


def test_auto_checkpointing_turns_on_when_the_step_exceeds_the_memory_budget_and_trains_the_same(world, tmp_path):
    plain = _run(world, tmp_path / "plain", "max_steps=2")
    assert "gradient checkpointing: off (auto: no GPU memory to fit and no memory_budget_gib)" in plain.stdout
    tight = _run(world, tmp_path / "tight", "max_steps=2", "memory_budget_gib=0.01")
    line = re.search(r"gradient checkpointing: every layer \(auto: the step's estimated ([\d.]+) MiB .* exceeds 90% of "
                     r"10.2 MiB, and is [\d.]+ MiB with these layers checkpointed: still more\)", tight.stdout)
    assert line and float(line[1]) > 10.2 * 0.9
    for a, b in zip(_metrics(tmp_path / "plain"), _metrics(tmp_path / "tight"), strict=True):
        for part in ("loss", "lm_loss", "grad_norm"):
            assert b[part] == pytest.approx(a[part], rel=1e-5), (a["step"], part)


@pytest.mark.slow
def test_a_compiled_decoder_trains_like_the_eager_one_and_saves_the_same_checkpoint(world, tmp_path):
    _run(world, tmp_path / "eager", "max_steps=3", "save_every=3")
    compiled = subprocess.run([sys.executable, *RECIPE, f"synth_dir={world}", f"output_dir={tmp_path / 'compiled'}",
                               "max_steps=3", "save_every=3", "compile=true"], capture_output=True, text=True,
                              cwd=ROOT, env=os.environ | {"TORCH_LOGS": "graph_code"})
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    assert "class GraphModule" in compiled.stderr  # dynamo captured the decoder
    for a, b in zip(_metrics(tmp_path / "eager"), _metrics(tmp_path / "compiled"), strict=True):
        for part in ("loss", "lm_loss", "ot_loss", "ac_loss", "grad_norm"):
            assert b[part] == pytest.approx(a[part], rel=1e-4), (a["step"], part)
    eager, compiled = (load_file(tmp_path / run / "final" / "adapter_model.safetensors") for run in ("eager", "compiled"))
    assert eager.keys() == compiled.keys() and all(torch.allclose(eager[k], compiled[k], atol=1e-5) for k in eager)


def test_a_non_finite_loss_stops_with_a_message_after_saving(world, tmp_path):
    result = _run(world, tmp_path / "nan", "max_steps=5", "model.loss.ot_weight=.inf", check=False)
    assert result.returncode != 0
    assert "non-finite loss" in result.stderr and "state saved at step 0" in result.stderr
    assert (tmp_path / "nan" / "checkpoints" / "step_000000" / "training_state.pt").is_file()


def test_train_tasks_trains_on_the_selected_tasks_only_and_names_a_typo(world, tmp_path):
    rows = [json.loads(line) for line in open(world / "train.jsonl")]
    wanted = sum(r["task"] == "arig" or r["target"].get("question_type") == "where" for r in rows)
    result = _run(world, tmp_path / "lookup", "max_steps=1", "train_tasks=[arig, 'avqa:where']")
    assert f"train_tasks arig, avqa:where: {wanted} of {len(rows)} samples" in result.stdout and 0 < wanted < len(rows)
    typo = _run(world, tmp_path / "typo", "max_steps=1", "train_tasks=[arg]", check=False)
    assert typo.returncode != 0 and "train_tasks: 'arg' matches no sample; the data holds arig, avc" in typo.stderr


def test_bad_config_keys_are_named(tmp_path):
    result = subprocess.run([sys.executable, *RECIPE, "max_stpes=3"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "unknown key(s) ['max_stpes']" in result.stderr


@pytest.mark.slow
def test_stage_one_projectors_start_stage_two(world, tmp_path):
    from safetensors.torch import load_file

    _run(world, tmp_path / "s1", "max_steps=2", "model.llm.lora=null", "model.loss.ot_weight=0", "model.loss.ac_weight=0")
    assert not (tmp_path / "s1" / "final" / "adapter_model.safetensors").exists()
    # only the projectors train: no LoRA learning rate to log (step 1 trains at the warmup's 0)
    assert [(m["lr"], m["projector_lr"] > 0) for m in _metrics(tmp_path / "s1")] == [(None, False), (None, True)]
    _run(world, tmp_path / "s2", "max_steps=0", f"init_from={tmp_path / 's1' / 'final'}",
         "gradient_checkpointing=true", "mixed_precision=bf16")
    stage1, stage2 = (load_file(tmp_path / s / "final" / "projectors.safetensors") for s in ("s1", "s2"))
    assert stage1.keys() == stage2.keys() and all(stage1[k].equal(stage2[k]) for k in stage1)
    assert (tmp_path / "s2" / "final" / "adapter_model.safetensors").is_file()


def _checkpoint(out: Path, step: int, cfg) -> None:
    """A checkpoint's training state, as `save` writes it, without its weights (resume_point reads no more)."""
    from dataclasses import asdict

    from meerkat.checkpointing import STATE_FILE

    folder = out / "checkpoints" / f"step_{step:06d}"
    folder.mkdir(parents=True)
    torch.save({"step": step, "config": asdict(cfg)}, folder / STATE_FILE)


def test_a_run_starts_over_no_other_run_and_resumes_only_its_own_settings(tmp_path):
    from train.config import load_config
    from train.sft import resume_point

    out = tmp_path / "run"
    _checkpoint(out, 4, load_config(None, [f"output_dir={out}", "lr=0.005", "max_steps=8"]))
    with pytest.raises(ValueError, match=rf"{out} holds the checkpoints of an earlier run \(up to step_000004\); "
                                         "continue it with --resume_from latest"):
        resume_point(load_config(None, [f"output_dir={out}"]))
    with pytest.raises(ValueError, match=r"was trained with other settings: batch_size 4 -> 2; lr 0.005 -> 0.1\. "
                                         r"A resumed run continues .* init_from=.*step_000004"):
        resume_point(load_config(None, [f"output_dir={out}", "lr=0.1", "batch_size=2", "--resume_from", "latest"]))
    path, state = resume_point(load_config(None, [f"output_dir={out}", "lr=0.005", "max_steps=20", "save_every=5",
                                                  "--resume_from", "latest"]))
    assert path == out / "checkpoints" / "step_000004" and state["step"] == 4


def test_resuming_a_run_that_reached_max_steps_trains_nothing_and_writes_nothing(tmp_path, capsys):
    from train.config import load_config
    from train.sft import main

    out = tmp_path / "run"
    _checkpoint(out, 8, load_config(None, [f"output_dir={out}", "max_steps=8"]))
    main([f"output_dir={out}", "max_steps=8", "--resume_from", "latest"])
    assert "step_000008 is at step 8 and max_steps is 8: nothing to train (raise max_steps to train on)" in \
        capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]


def test_data_smaller_than_one_batch_is_a_clear_error(tiny_model, tmp_path):
    from train.config import load_config
    from train.sft import build_loader

    sample = {"source": "t", "task": "avqa", "conversations": [{"role": "user", "content": "Q?"},
                                                               {"role": "assistant", "content": "A."}]}
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(dict(sample, id=f"s{i}")) + "\n" for i in range(3)))
    cfg = load_config(None, ["batch_size=2"])
    with pytest.raises(ValueError, match=r"3 training samples are fewer than one batch \(2 per process × 2 processes\)"):
        build_loader(cfg, tiny_model, [str(tmp_path / "d.jsonl")], str(tmp_path), num_processes=2)
    loader, _ = build_loader(cfg, tiny_model, [str(tmp_path / "d.jsonl")], str(tmp_path), num_processes=1)
    assert len(loader.batch_sampler.batches()) == 1


def test_help_lists_every_key_with_its_default(capsys):
    from dataclasses import fields

    from train.config import SFTConfig
    from train.sft import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # as wrapped
    assert exit_.value.code == 0 and "key=value, --key value, or --key alone (true)" in text
    assert all(f.name in text for f in fields(SFTConfig)) and "max_steps (30)" in text and "lr (0.0002)" in text

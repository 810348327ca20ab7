"""The 7B loading code, run on tiny weights written in each real on-disk format."""

import argparse
import json
import shutil
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from meerkat import MeerkatModel, get_preset
from meerkat.chat import Meerkat
from meerkat.encoders.audio import HTSATAudioEncoder
from meerkat.model import check_weight_files
from meerkat.tokenizer import _train_sentencepiece


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    """Tiny CLIP, CLAP and Llama weights in the published formats, from seed 123."""
    root = tmp_path_factory.mktemp("weights")
    cfg = get_preset("tiny")
    torch.manual_seed(123)
    clip = open_clip.CLIP(**cfg.vision.model_cfg)
    save_file(clip.state_dict(), str(root / "open_clip_model.safetensors"))
    torch.save(clip.state_dict(), root / "open_clip_pytorch_model.bin")
    htsat = HTSATAudioEncoder(cfg.audio).htsat
    state = {f"module.audio_branch.{k}": v for k, v in htsat.state_dict().items()}
    state["module.text_branch.embeddings.word_embeddings.weight"] = torch.randn(10, 4)
    state["module.audio_projection.0.weight"] = torch.randn(4, 4)
    torch.save({"epoch": 45, "state_dict": state}, root / "630k-audioset-best.pt")
    # The README's conversion of a CLAP .pt to safetensors keeps the audio branch only.
    save_file({k: v.contiguous() for k, v in state.items() if "audio_branch." in k}, str(root / "clap_audio.safetensors"))
    llama = LlamaForCausalLM(LlamaConfig(**cfg.llm.hf_config))
    llama.save_pretrained(root / "Llama-2-7b-chat-hf")
    (root / "Llama-2-7b-chat-hf" / "tokenizer.model").write_bytes(_train_sentencepiece(512))
    return {"root": root, "clip": clip, "htsat": htsat, "llama": llama}


def _config(fakes, vision_file="open_clip_model.safetensors", clap_file="630k-audioset-best.pt"):
    cfg = get_preset("tiny")
    cfg.vision.weights = str(fakes["root"] / vision_file)
    cfg.audio.checkpoint = str(fakes["root"] / clap_file)
    cfg.llm.path = str(fakes["root"] / "Llama-2-7b-chat-hf")
    cfg.llm.hf_config = None
    cfg.random_init = False
    cfg.seed = 999  # different from the fakes: every weight must come from the files
    return cfg


@pytest.mark.parametrize(("vision_file", "clap_file"), [
    ("open_clip_model.safetensors", "630k-audioset-best.pt"),
    ("open_clip_pytorch_model.bin", "clap_audio.safetensors"),
])
def test_files_in_published_formats_load_through_the_build_path(fakes, vision_file, clap_file):
    model = MeerkatModel.build(_config(fakes, vision_file, clap_file)).eval()
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected_patches = fakes["clip"].eval().visual.forward_intermediates(
            pixels, indices=[1], intermediates_only=True, output_fmt="NLC")["image_intermediates"][0]
    assert torch.allclose(model.vision(pixels), expected_patches, atol=1e-5)
    for name, tensor in fakes["htsat"].state_dict().items():
        assert torch.equal(model.audio.htsat.state_dict()[name], tensor), name
    ids = torch.tensor([[1, 5, 9, 200, 7]])
    with torch.no_grad():
        assert torch.allclose(model.llm(input_ids=ids).logits, fakes["llama"](input_ids=ids).logits, atol=1e-6)
    assert len(model.tokenizer) == 514  # the sentencepiece vocabulary + <image>, <audio>


def test_missing_weight_files_are_listed_together_with_where_to_get_them(monkeypatch):
    for var in ("MEERKAT_CLIP_WEIGHTS", "MEERKAT_CLAP_CHECKPOINT", "MEERKAT_LLAMA_DIR"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(FileNotFoundError) as error:
        MeerkatModel.build(get_preset("meerkat-7b"))
    message = str(error.value)
    for expected in ("vision.weights: not set", "$MEERKAT_CLIP_WEIGHTS", "timm/vit_base_patch16_clip_224.openai",
                     "audio.checkpoint: not set", "lukewys/laion_clap", "llm.path: not set", "Llama-2-7b-chat-hf"):
        assert expected in message


def test_paths_from_environment_that_do_not_exist_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("MEERKAT_CLIP_WEIGHTS", str(tmp_path / "clip.safetensors"))
    monkeypatch.setenv("MEERKAT_CLAP_CHECKPOINT", str(tmp_path / "clap.pt"))
    monkeypatch.setenv("MEERKAT_LLAMA_DIR", str(tmp_path / "llama"))
    with pytest.raises(FileNotFoundError) as error:
        MeerkatModel.build(get_preset("meerkat-7b"))
    assert f"{tmp_path / 'clip.safetensors'} does not exist" in str(error.value)
    assert f"{tmp_path / 'clap.pt'} does not exist" in str(error.value)
    assert f"{tmp_path / 'llama'} does not exist" in str(error.value)


def test_checkpoint_with_pickled_objects_is_refused(fakes, tmp_path):
    torch.save({"state_dict": {"module.audio_branch.x": torch.zeros(1)}, "args": argparse.Namespace(lr=1)},
               tmp_path / "clap.pt")
    cfg = _config(fakes)
    cfg.audio.checkpoint = str(tmp_path / "clap.pt")
    with pytest.raises(ValueError, match="could not be read as a weights-only checkpoint"):
        MeerkatModel.build(cfg)


def test_wrong_checkpoint_for_a_tower_is_named(fakes):
    cfg = _config(fakes)
    cfg.audio.checkpoint = cfg.vision.weights  # a CLIP file where a CLAP checkpoint belongs
    with pytest.raises(ValueError, match=r"has no 'audio_branch\.\*' keys"):
        MeerkatModel.build(cfg)


def test_a_model_built_from_files_trains_with_checkpointing_like_a_random_init_one(fakes, layer_runs):
    """transformers' `from_pretrained` returns its LLM in eval mode, where gradient checkpointing (and
    LoRA dropout) silently do nothing; the built model must train the same whichever way its LLM came."""
    model = MeerkatModel.build(_config(fakes))
    assert model.training and all(m.training for m in model.llm.modules())
    assert not any(m.training for m in [*model.vision.modules(), *model.audio.modules()])
    model.llm.gradient_checkpointing_enable()
    model.llm.enable_input_require_grads()
    calls = layer_runs(model.llm.get_decoder())
    ids = torch.tensor([[1, 5, 9, 200, 7]])
    model.llm(input_ids=ids, labels=ids).loss.backward()
    assert len(calls) == 2  # the forward, then its recomputation in the backward pass


def test_qlora_trains_4bit_layers_with_checkpointing_and_its_checkpoint_reloads(fakes, tmp_path, layer_runs, monkeypatch):
    """`llm.load_in_4bit` (bitsandbytes NF4, which runs on a CPU too): the loaded Llama's linear layers
    are 4-bit, LoRA on them learns through checkpointed layers, and the saved checkpoint rebuilds it."""
    import bitsandbytes as bnb

    cfg = _config(fakes)
    cfg.llm.load_in_4bit = True
    model = MeerkatModel.build(cfg)
    layers = fakes["llama"].config.num_hidden_layers
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.llm.modules()) == 7 * layers  # q k v o gate up down
    model.llm.gradient_checkpointing_enable()
    model.llm.enable_input_require_grads()
    calls = layer_runs(model.llm.get_decoder())
    ids = torch.tensor([[1, 5, 9, 200, 7, 11]])
    model.llm(input_ids=ids, labels=ids).loss.backward()
    assert len(calls) == 2
    lora_b = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(g is not None and g.abs().sum() > 0 for g in lora_b)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model.eval().save_pretrained(tmp_path / "ckpt")
    loaded = MeerkatModel.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        assert torch.equal(model.llm(input_ids=ids).logits, loaded.llm(input_ids=ids).logits)
    with monkeypatch.context() as m:  # refused before the base weights load
        m.setattr(MeerkatModel, "from_pretrained", lambda *a: pytest.fail("loaded the model before refusing"))
        with pytest.raises(ValueError, match="QLoRA checkpoint.*adapters are served unmerged"):  # merging into 4-bit rounds
            Meerkat.from_pretrained(tmp_path / "ckpt", device="cpu", merge_lora=True)


def test_an_empty_path_is_an_error_and_an_empty_variable_counts_as_unset(fakes, monkeypatch):
    monkeypatch.setenv("MEERKAT_CLIP_WEIGHTS", "")  # set but empty
    assert get_preset("meerkat-7b").vision.weights is None
    with pytest.raises(FileNotFoundError, match=r"vision.weights: not set"):
        MeerkatModel.build(get_preset("meerkat-7b"))
    cfg = _config(fakes)
    cfg.vision.weights = ""  # "" is the working folder as a path: it must not build a random tower
    with pytest.raises(FileNotFoundError, match=r"vision.weights: is an empty string"):
        MeerkatModel.build(cfg)


def test_base_paths_of_the_wrong_kind_are_named_one_line_each(fakes, tmp_path):
    (tmp_path / "vit_base_patch16_clip_224.openai").mkdir()  # the downloaded folder, not the file in it
    (tmp_path / "llama-2-7b-chat").mkdir()  # Meta's original download: params.json, no config.json
    (tmp_path / "llama-2-7b-chat" / "params.json").write_text("{}")
    cfg = _config(fakes)
    cfg.vision.weights = str(tmp_path / "vit_base_patch16_clip_224.openai")
    cfg.llm.path = str(fakes["root"] / "Llama-2-7b-chat-hf" / "config.json")
    with pytest.raises(FileNotFoundError) as error:
        check_weight_files(cfg)
    lines = str(error.value).splitlines()[1:]
    assert len(lines) == 2
    assert lines[0].startswith(f"  vision.weights: {cfg.vision.weights} is a folder; set it to the weights file in it")
    assert "open_clip_model.safetensors" in lines[0]
    assert lines[1].startswith(f"  llm.path: {cfg.llm.path} is a file; set it to the folder that holds config.json")
    cfg = _config(fakes)
    cfg.llm.path = str(tmp_path / "llama-2-7b-chat")
    with pytest.raises(FileNotFoundError, match=r"llm.path: .*llama-2-7b-chat has no config.json"):
        check_weight_files(cfg)
    no_tokenizer = _copy_llama(fakes, tmp_path / "no_tokenizer")
    (no_tokenizer / "tokenizer.model").unlink()
    cfg.llm.path = str(no_tokenizer)
    with pytest.raises(FileNotFoundError, match=r"llm.path: .*no_tokenizer has no tokenizer.model or tokenizer.json"):
        check_weight_files(cfg)


def _copy_llama(fakes, to):
    return Path(shutil.copytree(fakes["root"] / "Llama-2-7b-chat-hf", to))


def test_truncated_weight_files_are_named(fakes, tmp_path):
    clip = (fakes["root"] / "open_clip_model.safetensors").read_bytes()
    (tmp_path / "clip.safetensors").write_bytes(clip[: len(clip) // 2])
    (tmp_path / "clap.pt").write_bytes(b"")
    cfg = _config(fakes)
    cfg.vision.weights = str(tmp_path / "clip.safetensors")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'clip.safetensors'} is truncated or not a safetensors file"):
        MeerkatModel.build(cfg)
    cfg = _config(fakes)
    cfg.audio.checkpoint = str(tmp_path / "clap.pt")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'clap.pt'} is truncated or not a checkpoint \(EOFError after 0"):
        MeerkatModel.build(cfg)
    llama = _copy_llama(fakes, tmp_path / "llama")
    shard = llama / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1000])
    cfg = _config(fakes)
    cfg.llm.path = str(llama)
    with pytest.raises(ValueError, match=rf"llm.path: a weights file in {llama} is truncated or not a safetensors file"):
        MeerkatModel.build(cfg)


def test_a_tower_file_of_another_architecture_names_file_key_and_mismatches(fakes, tmp_path):
    other = get_preset("tiny").audio
    other.htsat = dict(embed_dim=24, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])  # cf. HTSAT-tiny vs HTSAT-base
    state = {f"module.audio_branch.{k}": v for k, v in HTSATAudioEncoder(other).htsat.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "630k-audioset-best.pt")
    cfg = _config(fakes, clap_file=str(tmp_path / "630k-audioset-best.pt"))
    with pytest.raises(ValueError) as error:
        MeerkatModel.build(cfg)
    assert str(error.value).startswith(f"audio.checkpoint: {tmp_path / '630k-audioset-best.pt'} does not fit the HTSAT "
                                       "(embed_dim 16, depths [1, 1, 1, 1]) this config builds (patch_embed.proj.weight: "
                                       "file (24, 1, 4, 4), model (16, 1, 4, 4);")
    assert "630k-*.pt are HTSAT-tiny" in str(error.value)
    clip_cfg = dict(get_preset("tiny").vision.model_cfg)
    clip_cfg["vision_cfg"] = dict(clip_cfg["vision_cfg"], patch_size=16)
    save_file(open_clip.CLIP(**clip_cfg).state_dict(), str(tmp_path / "clip16.safetensors"))
    cfg = _config(fakes, vision_file=str(tmp_path / "clip16.safetensors"))
    with pytest.raises(ValueError, match=r"vision.weights: .*clip16.safetensors does not fit the tiny-vit \(patch 32, "
                                         r"width 64, 2 layers\) this config builds \(positional_embedding: file \(197, 64\)"):
        MeerkatModel.build(cfg)


def test_numpy_scalars_load_and_a_protocol_4_file_says_the_command_that_converts_it(fakes, tmp_path):
    import numpy as np

    state = torch.load(fakes["root"] / "630k-audioset-best.pt", weights_only=True)["state_dict"]
    laion = {"epoch": 15, "best_acc": np.float64(0.9014), "step": np.int64(7), "state_dict": state}
    torch.save(laion, tmp_path / "clap.pt")
    audio = HTSATAudioEncoder(get_preset("tiny").audio)
    audio.load_weights(str(tmp_path / "clap.pt"))  # numpy scalars are allowed by name
    torch.save(laion, tmp_path / "clap_p4.pt", pickle_protocol=4)  # which torch's weights-only reader cannot parse
    with pytest.raises(ValueError) as error:
        audio.load_weights(str(tmp_path / "clap_p4.pt"))
    command = f"python -m meerkat.encoders.weights convert-clap {tmp_path / 'clap_p4.pt'} {tmp_path / 'clap_p4_audio.safetensors'}"
    assert command in str(error.value)
    from meerkat.encoders.weights import main as weights_cli

    assert weights_cli(command.split()[3:]) == 0
    audio.load_weights(str(tmp_path / "clap_p4_audio.safetensors"))
    for name, tensor in fakes["htsat"].state_dict().items():
        assert torch.equal(audio.htsat.state_dict()[name], tensor), name


def test_convert_clap_help_says_it_unpickles_in_full(capsys):
    from meerkat.encoders.weights import main as weights_cli

    with pytest.raises(SystemExit):
        weights_cli(["convert-clap", "--help"])
    assert "weights_only=False" in capsys.readouterr().out.replace("\n", " ")


def test_base_weights_that_moved_load_through_base_paths_and_must_be_the_same(fakes, tmp_path, monkeypatch):
    bases = tmp_path / "bases"
    bases.mkdir()
    for name in ("open_clip_model.safetensors", "630k-audioset-best.pt"):
        shutil.copy(fakes["root"] / name, bases / name)
    _copy_llama(fakes, bases / "Llama-2-7b-chat-hf")
    monkeypatch.chdir(bases)
    cfg = _config(fakes, "open_clip_model.safetensors", "630k-audioset-best.pt")
    cfg.vision.weights, cfg.audio.checkpoint, cfg.llm.path = "open_clip_model.safetensors", "630k-audioset-best.pt", \
        "Llama-2-7b-chat-hf"  # relative to the folder the run started in
    ckpt = tmp_path / "ckpt"
    MeerkatModel.build(cfg).save_pretrained(ckpt)
    assert json.loads((ckpt / "meerkat_config.json").read_text())["vision"]["weights"] == str(bases / cfg.vision.weights)
    monkeypatch.chdir(tmp_path)
    moved = bases.rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError) as error:
        MeerkatModel.from_pretrained(ckpt)
    assert (f"These paths come from {ckpt / 'meerkat_config.json'}; if the files moved, say where they are now: "
            "from_pretrained(..., base_paths={'vision.weights': ..., 'audio.checkpoint': ..., 'llm.path': ...}), "
            "or --base vision.weights=PATH --base audio.checkpoint=PATH --base llm.path=PATH to meerkat.chat and "
            "eval.run" in str(error.value))
    paths = {"vision.weights": moved / "open_clip_model.safetensors", "audio.checkpoint": moved / "630k-audioset-best.pt",
             "llm.path": moved / "Llama-2-7b-chat-hf"}
    assert Meerkat.from_pretrained(ckpt, device="cpu", base_paths=paths).model.config.llm.path == str(paths["llm.path"])
    with pytest.raises(ValueError, match=r"base_paths: unknown key\(s\) \['vision'\]; valid keys are \['audio.checkpoint', "
                                         r"'llm.path', 'vision.weights'\]"):
        MeerkatModel.from_pretrained(ckpt, base_paths={"vision": paths["vision.weights"]})
    torch.manual_seed(7)  # other weights written over the file (as `python -m demo.encoders` rewrites its tower)
    save_file(open_clip.CLIP(**get_preset("tiny").vision.model_cfg).state_dict(), str(paths["vision.weights"]))
    config = json.loads((paths["llm.path"] / "config.json").read_text())
    (paths["llm.path"] / "config.json").write_text(json.dumps(config | {"rms_norm_eps": 1e-5}))
    with pytest.raises(ValueError) as error:
        MeerkatModel.from_pretrained(ckpt, base_paths=paths)
    assert str(error.value).splitlines() == [
        f"{ckpt} was trained on other base weights than these (base_weights.json records them):",
        f"  vision.weights: {paths['vision.weights']} holds other weights than it was trained on",
        f"  llm.path: {paths['llm.path']} holds other weights than it was trained on",
        "Point base_paths (--base) at the weights it was trained on"]
    (ckpt / "base_weights.json").unlink()  # a checkpoint saved before the record: nothing to compare
    MeerkatModel.from_pretrained(ckpt, base_paths=paths)


def test_the_chat_and_eval_commands_take_moved_base_weights(fakes, tmp_path, capsys, monkeypatch):
    from eval import metrics
    from eval.run import main as eval_cli
    from instruct_data.cli import main as data_cli
    from meerkat.chat import main as chat_cli

    ckpt, moved = tmp_path / "ckpt", tmp_path / "moved"
    MeerkatModel.build(_config(fakes)).save_pretrained(ckpt)
    shutil.copytree(fakes["root"], moved)
    config = json.loads((ckpt / "meerkat_config.json").read_text())
    for part, field in (("vision", "weights"), ("audio", "checkpoint"), ("llm", "path")):
        config[part][field] = config[part][field].replace(str(fakes["root"]), str(tmp_path / "gone"))
    (ckpt / "meerkat_config.json").write_text(json.dumps(config))  # as if trained where the weights were elsewhere
    data_cli(["synth", "--out", str(tmp_path / "world"), "--n", "4", "--seed", "1"])
    world = tmp_path / "world"
    scene = json.loads((world / "train.jsonl").read_text().splitlines()[0])
    media = ["--image", str(world / scene["image"]), "--audio", str(world / scene["audio"])]
    ask = ["--checkpoint", str(ckpt), *media, "--prompt", "What is making the sound?", "--max_new_tokens", "3"]
    base = ["--base", f"vision.weights={moved / 'open_clip_model.safetensors'}",
            "--base", f"audio.checkpoint={moved / '630k-audioset-best.pt'}",
            "--base", f"llm.path={moved / 'Llama-2-7b-chat-hf'}"]
    assert chat_cli(ask) == 1
    assert "--base vision.weights=PATH --base audio.checkpoint=PATH --base llm.path=PATH" in capsys.readouterr().err
    assert chat_cli(ask + base) == 0
    assert capsys.readouterr().out.strip()
    evaluate = ["--checkpoint", str(ckpt), "--data", str(world / "train.jsonl"), "--media-root", str(world),
                "--out", str(tmp_path / "report"), "--tasks", "avc", "--limit", "1", "--max-new-tokens", "3"]
    monkeypatch.setattr(metrics, "java_available", lambda: False)  # METEOR's Java takes seconds
    assert eval_cli(evaluate) == 2
    assert eval_cli(evaluate + base) == 0
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["tasks"]["avc"]["n"] == 1
    for bad in ("vision=x", "llm.path=", "llm.path"):
        with pytest.raises(SystemExit):
            chat_cli(["--checkpoint", str(ckpt), "--base", bad])
        assert ("argument --base: expected KEY=PATH with KEY one of vision.weights, audio.checkpoint, llm.path, "
                f"got {bad!r}") in capsys.readouterr().err


def test_a_random_init_tower_is_not_silently_replaced_by_a_file(fakes, tmp_path):
    MeerkatModel.build(get_preset("tiny")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"\n  vision.weights: trained on random-init weights, now given .*open_clip"):
        MeerkatModel.from_pretrained(tmp_path, base_paths={"vision.weights": fakes["root"] / "open_clip_model.safetensors"})


def test_an_llm_folder_asking_for_a_hub_attention_kernel_is_refused(fakes, tmp_path):
    llama = _copy_llama(fakes, tmp_path / "llama")
    config = json.loads((llama / "config.json").read_text())
    (llama / "config.json").write_text(json.dumps(config | {"attn_implementation": "someone/evil-attention"}))
    cfg = _config(fakes)
    cfg.llm.path = str(llama)
    with pytest.raises(ValueError, match=rf"{llama / 'config.json'}: attn_implementation 'someone/evil-attention' is "
                                         r"not one of transformers' local implementations \(eager, .*sdpa"):
        MeerkatModel.build(cfg)

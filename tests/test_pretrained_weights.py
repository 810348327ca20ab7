"""The 7B loading code, run on tiny weights written in each real on-disk format."""

import argparse

import open_clip
import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from meerkat import MeerkatModel, get_preset
from meerkat.encoders.audio import HTSATAudioEncoder
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


def test_qlora_trains_4bit_layers_with_checkpointing_and_its_checkpoint_reloads(fakes, tmp_path, layer_runs):
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

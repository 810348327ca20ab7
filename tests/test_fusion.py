import pytest
import torch
from safetensors.torch import load_file

from meerkat import MeerkatModel, get_preset
from meerkat.fusion import AudioVisualFusion
from meerkat.losses.ac import audio_to_image_attention
from meerkat.model import PROJECTOR_FILE
from train.config import SFTConfig
from train.sft import build_optimizer


@pytest.fixture(scope="module")
def fused_model() -> MeerkatModel:
    cfg = get_preset("tiny")
    cfg.projector.fusion = True
    return MeerkatModel.build(cfg).eval()


def test_each_audio_token_carries_the_patches_it_attends_to_and_its_map():
    torch.manual_seed(0)
    fusion = AudioVisualFusion(width=8, patches=4, temperature=0.1)
    patches = torch.eye(4, 8)[None]  # (1, 4, 8): four orthogonal patches
    audio = torch.stack([patches[0, 2] * 3, patches[0, 0] + 0.1 * patches[0, 1]])[None]  # look at patch 2, at patch 0
    placed = patches + torch.randn(1, 4, 8)  # what is carried: the patches as the LLM reads them
    attention = audio_to_image_attention(audio, patches, 0.1)  # (1, 2, 4)
    assert attention[0].argmax(-1).tolist() == [2, 0] and attention[0, 0, 2] > 0.95
    heat = attention / attention.amax(-1, keepdim=True)
    expected = audio + fusion.attended(attention @ placed) + fusion.where(heat)
    assert torch.allclose(fusion(audio, patches, placed), expected, atol=1e-6)
    # a different picture behind the same sound changes what the sound carries
    assert not torch.allclose(fusion(audio, patches, placed.flip(1)), expected, atol=1e-3)


def _audio_embeddings(model, batch) -> torch.Tensor:
    embeds, _, is_audio, *_ = model.embed(batch["input_ids"], batch["pixel_values"], batch.get("audio_values"))
    return embeds[is_audio].view(len(batch["input_ids"]), -1, embeds.shape[-1])


def test_the_llm_hears_the_image_only_with_fusion(fused_model, tiny_model, arig_turns, image, tone):
    other = image.rotate(90)
    for model, fused in ((fused_model, True), (tiny_model, False)):
        p = model.processor
        batch = p.collate([p.encode(arig_turns, image=image, audio=tone), p.encode(arig_turns, image=other, audio=tone)])
        with torch.no_grad():
            heard = _audio_embeddings(model, batch)
        assert torch.allclose(heard[0], heard[1], atol=1e-5) != fused


def test_clips_without_an_image_reach_the_llm_unfused(fused_model, arig_turns, image, tone):
    p = fused_model.processor
    sound = [{"role": "user", "content": "<audio>\nWhat do you hear?"}, {"role": "assistant", "content": "A tone."}]
    batch = p.collate([p.encode(arig_turns, image=image, audio=tone), p.encode(sound, audio=tone)])
    with torch.no_grad():
        embeds, _, is_audio, _, audio_tokens = fused_model.embed(batch["input_ids"], batch["pixel_values"],
                                                                 batch["audio_values"])
        plain = fused_model.audio_projector.place(audio_tokens)  # (2 clips, tokens, D) before fusion
    assert torch.allclose(embeds[1][is_audio[1]], plain[1], atol=1e-6)
    assert not torch.allclose(embeds[0][is_audio[0]], plain[0], atol=1e-3)


def test_the_auxiliary_losses_compare_the_unfused_tokens(fused_model, arig_batch):
    """OT and AC see the projected audio, not audio that already holds the image."""
    plain = MeerkatModel.build(get_preset("tiny")).eval()  # same seed: the same projectors and LLM
    batch = arig_batch(fused_model.processor)
    with torch.no_grad():
        a, b = fused_model(**batch), plain(**batch)
    assert a.ac_loss > 0 and a.ot_loss > 0
    assert torch.allclose(a.ac_loss, b.ac_loss) and torch.allclose(a.ot_loss, b.ot_loss)
    assert not torch.isclose(a.lm_loss, b.lm_loss)


def test_fusion_weights_are_trained_saved_and_loaded(tmp_path, fused_model, arig_batch):
    batch = arig_batch(fused_model.processor)
    fused_model.train()
    fused_model(**batch).loss.backward()
    fused_model.eval()
    grads = {n: p.grad for n, p in fused_model.fusion.named_parameters()}
    fused_model.zero_grad(set_to_none=True)
    assert set(grads) == {"attended.weight", "attended.bias", "where.weight", "where.bias"}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    fused_model.save_pretrained(tmp_path)
    assert {"fusion.attended.weight", "fusion.where.weight"} <= set(load_file(tmp_path / PROJECTOR_FILE))
    loaded = MeerkatModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, fused_model(**batch).logits)


def test_a_checkpoint_without_fusion_weights_names_them(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    cfg = get_preset("tiny")
    cfg.projector.fusion = True
    with pytest.raises(ValueError, match="missing fusion.attended"):
        MeerkatModel.build(cfg).load_trained_weights(tmp_path)


def test_a_packed_batch_fuses_each_clip_with_its_own_samples_image(fused_model, arig_turns, image, tone):
    """Packed rows hold several samples: the padded batch's losses come out only if every clip meets the
    image of its own sample (a rotated picture in the first sample, none in the second)."""
    p = fused_model.processor
    sound = [{"role": "user", "content": "<audio>\nWhat do you hear?"}, {"role": "assistant", "content": "A tone."}]
    items = [p.encode(arig_turns, image=image.rotate(90), audio=tone, box=[0.1, 0.2, 0.4, 0.6]),
             p.encode(sound, audio=tone), p.encode(arig_turns, image=image, audio=tone, box=[0.5, 0.1, 0.9, 0.5])]
    padded = p.collate(items)
    packed = p.pack(items, row_length=sum(len(item["input_ids"]) for item in items))
    assert len(packed["input_ids"]) == 1
    with torch.no_grad():
        a = fused_model(**padded, num_items_in_batch=fused_model.loss_items(padded["labels"]))
        b = fused_model(**packed, num_items_in_batch=fused_model.loss_items(padded["labels"]))
    for part in ("loss", "lm_loss", "ot_loss", "ac_loss"):
        assert torch.allclose(getattr(a, part), getattr(b, part), rtol=1e-5, atol=1e-6), part


def test_the_fusion_trains_at_the_projectors_learning_rate(fused_model):
    cfg = SFTConfig(lr=2e-4, projector_lr=1e-3)
    optimizer, _ = build_optimizer(cfg, fused_model, total_steps=10)
    own = {id(q) for name in fused_model.added_modules for q in getattr(fused_model, name).parameters()}
    assert len(own) == 4 + sum(1 for name in ("vision_projector", "audio_projector")
                               for _ in getattr(fused_model, name).parameters())
    assert {id(q) for q in optimizer.param_groups[0]["params"]} == own
    assert optimizer.param_groups[0]["initial_lr"] == 1e-3 and optimizer.param_groups[1]["initial_lr"] == 2e-4

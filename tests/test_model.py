import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from meerkat import MeerkatModel, get_preset
from meerkat.config import LoraSettings, MeerkatConfig
from meerkat.model import ADAPTER_FILE, LLM_FILE, PROJECTOR_FILE, PositionCodes, Projector, scatter_media
from meerkat.tokenizer import build_tokenizer
from meerkat.prompt import IGNORE_INDEX


def test_scatter_places_each_feature_at_its_placeholder_and_leaves_text_alone():
    embeds = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    features = -torch.arange(1, 13, dtype=torch.float32).view(2, 2, 3)  # 2 items × 2 tokens
    merged = scatter_media(embeds, mask, features, "image")
    assert torch.equal(merged[0, 1:3], features[0])
    assert torch.equal(merged[1, 3:5], features[1])
    assert torch.equal(merged[~mask], embeds[~mask])


def test_scatter_count_mismatch_names_both_counts():
    with pytest.raises(ValueError, match=r"4 audio placeholder tokens but 1 audio input\(s\) × 3 tokens = 3"):
        scatter_media(torch.zeros(1, 6, 2), torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool), torch.zeros(1, 3, 2), "audio")


def test_forward_splices_projected_media_into_the_llm_input(tiny_model, batch):
    captured = {}
    handle = tiny_model.llm.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: captured.update(kwargs), with_kwargs=True)
    try:
        with torch.no_grad():
            tiny_model(**batch)
    finally:
        handle.remove()
    embeds = captured["inputs_embeds"]  # (B, L, D)
    ids = batch["input_ids"]
    image_tokens = tiny_model.vision_projector(tiny_model.vision(batch["pixel_values"]))
    audio_tokens = tiny_model.audio_projector(tiny_model.audio(batch["audio_values"]))
    for row in range(2):
        assert torch.allclose(embeds[row][ids[row] == tiny_model.image_token_id], image_tokens[row])
        assert torch.allclose(embeds[row][ids[row] == tiny_model.audio_token_id], audio_tokens[row])
    text = (ids != tiny_model.image_token_id) & (ids != tiny_model.audio_token_id)
    assert torch.equal(embeds[text], tiny_model.llm.get_input_embeddings()(ids[text]))
    assert (ids == tiny_model.image_token_id).sum() == 2 * tiny_model.vision.num_tokens == 2 * 49
    assert (ids == tiny_model.audio_token_id).sum() == 2 * tiny_model.audio.num_tokens == 2 * 16


def test_labels_mask_prompt_and_media_tokens(tiny_model, batch):
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    answer = labels[labels != IGNORE_INDEX]
    assert tiny_model.tokenizer.decode(answer) == "The red square at [0.10, 0.20, 0.40, 0.60].</s>"
    assert (labels[ids == tiny_model.image_token_id] == IGNORE_INDEX).all()


def test_forward_returns_all_loss_parts_and_their_weighted_sum(tiny_model, batch):
    out = tiny_model(**batch)
    weights = tiny_model.config.loss
    for part in (out.lm_loss, out.ot_loss, out.ac_loss):
        assert part.ndim == 0 and torch.isfinite(part) and part > 0
    assert torch.allclose(out.loss, out.lm_loss + weights.ot_weight * out.ot_loss + weights.ac_weight * out.ac_loss)
    answer_tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert out.logits.shape == (answer_tokens, 512)  # the vocabulary projection ran on answer positions only
    without_labels = tiny_model(**{k: v for k, v in batch.items() if k != "labels"})
    assert without_labels.logits.shape == (2, batch["input_ids"].shape[1], 512) and without_labels.lm_loss == 0


@pytest.mark.parametrize("num_items", [None, 7.0])
def test_answer_only_loss_equals_the_transformers_causal_lm_loss(tiny_model, batch, num_items):
    embeds = tiny_model.embed(batch["input_ids"], batch["pixel_values"], batch["audio_values"])[0]
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    reference = tiny_model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"], **extra)
    ours = tiny_model(**batch, **extra)
    assert torch.allclose(ours.lm_loss, reference.loss, rtol=1e-6, atol=1e-7)
    scored = batch["labels"][:, 1:] != IGNORE_INDEX
    assert torch.allclose(ours.logits, reference.logits[:, :-1][scored].float(), atol=1e-6)


def test_gradients_reach_projectors_and_lora_only(tiny_model, batch):
    tiny_model.zero_grad(set_to_none=True)
    tiny_model(**batch).loss.backward()
    grads = {name: p.grad for name, p in tiny_model.named_parameters()}
    trainable = [n for n, p in tiny_model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("vision_projector", "audio_projector")) or "lora_" in n for n in trainable)
    for name in ("vision_projector.0.weight", "audio_projector.0.weight"):
        assert grads[name] is not None and grads[name].abs().sum() > 0
    lora_b = [g for n, g in grads.items() if "lora_B" in n]
    assert lora_b and all(g is not None and g.abs().sum() > 0 for g in lora_b)
    frozen = [n for n, g in grads.items() if not (n.startswith(("vision_projector", "audio_projector")) or "lora_" in n)]
    assert frozen and all(grads[n] is None for n in frozen)
    tiny_model.zero_grad(set_to_none=True)


def test_ac_loss_is_zero_without_boxes_and_ot_needs_both_modalities(tiny_model, image, tone, arig_turns):
    p = tiny_model.processor
    unboxed = p.collate([p.encode(arig_turns, image=image, audio=tone)])
    out = tiny_model(**unboxed)
    assert out.ac_loss.item() == 0.0 and out.ot_loss.item() > 0
    image_only = [{"role": "user", "content": "<image>\nDescribe it."}, {"role": "assistant", "content": "A red square."}]
    out = tiny_model(**p.collate([p.encode(image_only, image=image)]))
    assert out.ot_loss.item() == 0.0 and out.ac_loss.item() == 0.0 and out.lm_loss > 0


def test_losses_can_be_switched_off(batch):
    cfg = get_preset("tiny")
    cfg.loss = dataclasses.replace(cfg.loss, ot_weight=0.0, ac_weight=0.0)
    out = MeerkatModel.build(cfg)(**batch)
    assert out.ot_loss.item() == 0.0 and out.ac_loss.item() == 0.0
    assert torch.equal(out.loss, out.lm_loss)


def test_encoders_stay_in_eval_mode_when_training(tiny_model):
    tiny_model.train()
    assert tiny_model.llm.training and not tiny_model.audio.training and not tiny_model.vision.training
    tiny_model.eval()


def test_save_then_load_gives_identical_outputs(tmp_path, batch):
    model = MeerkatModel.build(get_preset("tiny"))
    with torch.no_grad():  # make the trainable weights differ from a fresh build
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = MeerkatModel.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)
    fresh = MeerkatModel.build(get_preset("tiny")).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(**batch).logits, a.logits)
    files = {f.name: f.stat().st_size for f in (tmp_path / "ckpt").iterdir()}
    assert {"meerkat_config.json", PROJECTOR_FILE, ADAPTER_FILE, "tokenizer.json"} <= set(files)
    assert sum(files.values()) < 5_000_000
    assert all(k.startswith(("vision_projector.", "audio_projector.")) for k in load_file(tmp_path / "ckpt" / PROJECTOR_FILE))


def test_from_pretrained_on_a_non_checkpoint_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="meerkat_config.json is missing"):
        MeerkatModel.from_pretrained(tmp_path)


def test_a_checkpoint_whose_config_does_not_match_its_weights_names_the_mismatch(tmp_path):
    MeerkatModel.build(get_preset("tiny")).save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "meerkat_config.json").read_text())
    config["projector"]["kind"] = "mlp"
    (tmp_path / "ckpt" / "meerkat_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"projectors.safetensors does not match.*missing vision_projector.2.weight"):
        MeerkatModel.from_pretrained(tmp_path / "ckpt")
    config["projector"]["kind"] = "linear"
    config["llm"]["lora"]["r"] = 4
    (tmp_path / "ckpt" / "meerkat_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"adapter_model.safetensors does not match.*lora_A.*file \(8, 64\), model \(4, 64\)"):
        MeerkatModel.from_pretrained(tmp_path / "ckpt")


def test_weights_the_config_has_no_place_for_are_errors_not_dropped(tmp_path):
    ckpt = tmp_path / "ckpt"
    MeerkatModel.build(get_preset("tiny")).save_pretrained(ckpt)
    projectors = load_file(ckpt / PROJECTOR_FILE)
    for stray in ({"fusion.where.weight": torch.zeros(1)}, {"text_projector.weight": torch.zeros(1)}):
        save_file(projectors | stray, str(ckpt / PROJECTOR_FILE))
        with pytest.raises(ValueError, match=rf"{PROJECTOR_FILE} holds weights of modules this config does not build: "
                                             rf"\['{next(iter(stray))}'\]"):
            MeerkatModel.from_pretrained(ckpt)
    save_file(projectors, str(ckpt / PROJECTOR_FILE))
    config = json.loads((ckpt / "meerkat_config.json").read_text())
    (ckpt / "meerkat_config.json").write_text(json.dumps(config | {"llm": config["llm"] | {"lora": None}}))
    with pytest.raises(ValueError, match=rf"{ADAPTER_FILE} holds trained weights but the config would drop them "
                                         r"\(llm.lora is null\)"):
        MeerkatModel.from_pretrained(ckpt)
    (ckpt / ADAPTER_FILE).unlink()
    save_file({"model.norm.weight": torch.ones(64)}, str(ckpt / LLM_FILE))
    with pytest.raises(ValueError, match=rf"{LLM_FILE} holds trained weights but the config would drop them "
                                         r"\(llm.train_base is false\)"):
        MeerkatModel.from_pretrained(ckpt)


def test_a_truncated_checkpoint_file_is_named(tmp_path):
    MeerkatModel.build(get_preset("tiny")).save_pretrained(tmp_path)
    (tmp_path / PROJECTOR_FILE).write_bytes((tmp_path / PROJECTOR_FILE).read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"{tmp_path / PROJECTOR_FILE} is truncated or not a safetensors file"):
        MeerkatModel.from_pretrained(tmp_path)


def test_from_pretrained_reads_the_tokenizer_the_checkpoint_saved(tmp_path, monkeypatch):
    """A random-init preset trains its tokenizer on the bundled corpus, which changes between versions:
    a checkpoint's weights go with the ids of the tokenizer it saved, not with a new one."""
    import meerkat.tokenizer

    model = MeerkatModel.build(get_preset("tiny"))
    model.save_pretrained(tmp_path / "ckpt")
    text = "Which object in the image is making this sound? Answer with its bounding box."
    monkeypatch.setattr(meerkat.tokenizer, "_train_sentencepiece", lambda size: pytest.fail("rebuilt the tokenizer"))
    loaded = MeerkatModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.tokenizer(text).input_ids == model.tokenizer(text).input_ids
    assert (loaded.image_token_id, loaded.audio_token_id, loaded.tokenizer.pad_token_id) == \
        (model.image_token_id, model.audio_token_id, model.tokenizer.pad_token_id)
    monkeypatch.undo()
    other = build_tokenizer(dataclasses.replace(get_preset("tiny").llm, tokenizer_vocab_size=480))  # as if from another corpus
    monkeypatch.setattr("meerkat.model.build_tokenizer", lambda cfg: other)
    with pytest.raises(ValueError, match=r"the tokenizer saved in .*ckpt gives other token ids than the one this config"):
        MeerkatModel.build(get_preset("tiny")).load_trained_weights(tmp_path / "ckpt")  # as init_from does
    (tmp_path / "ckpt" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'ckpt'} has no tokenizer"):
        MeerkatModel.from_pretrained(tmp_path / "ckpt")


def test_an_attention_kernel_from_the_hub_is_refused(tmp_path):
    cfg = get_preset("tiny")
    cfg.llm.hf_config["attn_implementation"] = "someone/evil-attention"  # would download and run that repository
    with pytest.raises(ValueError, match=r"llm.hf_config: attn_implementation 'someone/evil-attention' is not one of "
                                         r"transformers' local implementations \(eager, .*sdpa"):
        MeerkatModel.build(cfg)
    cfg.llm.hf_config["attn_implementation"] = "eager"
    assert MeerkatModel.build(cfg).llm.config._attn_implementation == "eager"


def test_train_base_fine_tunes_the_whole_llm_and_saves_it(tmp_path, arig_batch):
    model = MeerkatModel.build(get_preset("small"))
    batch = arig_batch(model.processor)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("llm.") and "lora" not in n for n in trainable)
    assert not any(n.startswith(("vision.", "audio.")) for n in trainable)
    with torch.no_grad():
        for p in model.llm.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval().save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / LLM_FILE).is_file() and not (tmp_path / "ckpt" / ADAPTER_FILE).exists()
    loaded = MeerkatModel.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)


def test_train_base_refuses_lora():
    cfg = get_preset("small")
    cfg.llm.lora = LoraSettings()
    with pytest.raises(ValueError, match="llm.train_base fine-tunes the full LLM"):
        MeerkatModel.build(cfg)


def test_standardized_projector_removes_the_direction_every_input_shares(tmp_path, arig_batch):
    """A shared offset (what random frozen towers produce) vanishes: two different inputs come out as
    different as their differences, whatever offset they share; running statistics load with the weights."""
    projector = Projector(16, 8, "linear", standardize=True).train()
    shared = torch.randn(16) * 50
    x = shared + torch.randn(64, 4, 16)
    standardized = projector.standardize(x.reshape(-1, 16))
    assert standardized.mean(0).abs().max() < 1e-4 and (standardized.std(0) - 1).abs().max() < 0.05
    assert torch.allclose(projector(x), projector(x - shared + 7.0), atol=1e-3)

    model = MeerkatModel.build(get_preset("small")).train()  # small standardises
    assert model.audio_projector.standardize is not None
    batch = arig_batch(model.processor)
    model(**batch)  # updates the running statistics
    with torch.no_grad():
        model.vision_projector.positions.tables[1].mul_(3.0)  # as if trained
    model.eval().save_pretrained(tmp_path / "ckpt")
    loaded = MeerkatModel.from_pretrained(tmp_path / "ckpt").eval()
    assert torch.equal(loaded.audio_projector.standardize.running_mean, model.audio_projector.standardize.running_mean)
    assert torch.equal(loaded.vision_projector.positions.tables[1], model.vision_projector.positions.tables[1])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)


def test_position_codes_tell_every_place_apart_and_skip_leading_tokens():
    codes = PositionCodes((2, 3), width=8, leading=1)
    tokens = torch.randn(2, 7, 8)
    out = codes(tokens)
    assert out.shape == tokens.shape and torch.equal(out[:, 0], tokens[:, 0])  # CLS untouched
    code = (out - tokens)[0, 1:].view(2, 3, 8)  # (row, column, width), row-major like the patch grid
    assert torch.allclose(out - tokens, (out - tokens)[:1].expand_as(out), atol=1e-6)  # same code for every image
    assert torch.allclose(code[:, :, :4], code[:, :1, :4].expand(2, 3, 4), atol=1e-6)  # rows own the first half
    assert torch.allclose(code[:, :, 4:], code[:1, :, 4:].expand(2, 3, 4), atol=1e-6)  # columns the second
    flat = code.reshape(6, 8)
    assert torch.cdist(flat, flat)[~torch.eye(6, dtype=torch.bool)].min() > 1e-3  # six distinct places


def test_position_codes_reach_the_llm_but_not_the_auxiliary_losses(arig_batch):
    """Zeroing the codes changes what the LLM reads (so its loss) and nothing that OT and AC compare."""
    cfg = get_preset("small")
    cfg.loss.ot_weight, cfg.loss.ac_weight = 0.1, 0.5
    model = MeerkatModel.build(cfg).eval()
    assert model.vision_projector.positions.axes == (7, 7) and model.audio_projector.positions.axes == (16,)
    batch = arig_batch(model.processor)
    with torch.no_grad():
        placed = model(**batch)
        for projector in (model.vision_projector, model.audio_projector):
            for table in projector.positions.tables:
                table.zero_()
        bare = model(**batch)
    assert not torch.isclose(placed.lm_loss, bare.lm_loss)
    assert bare.ac_loss > 0 and torch.equal(placed.ac_loss, bare.ac_loss) and torch.equal(placed.ot_loss, bare.ot_loss)


def _mixed_samples(p, image, tone, arig_turns):
    """Samples of different lengths and media: boxed and unboxed ARIG, image-only, audio-only, a long answer."""
    caption = [{"role": "user", "content": "<image>\nDescribe it."}, {"role": "assistant", "content": "A red square."}]
    sound = [{"role": "user", "content": "<audio>\nWhat do you hear?"}, {"role": "assistant", "content": "A tone."}]
    long = [dict(arig_turns[0]), {"role": "assistant", "content": "It is the red square, " * 6 + "[0.10, 0.20, 0.40, 0.60]."}]
    return [p.encode(arig_turns, image=image, audio=tone, box=[0.1, 0.2, 0.4, 0.6]), p.encode(caption, image=image),
            p.encode(sound, audio=tone), p.encode(long, image=image, audio=tone, box=[0.5, 0.1, 0.9, 0.5]),
            p.encode(arig_turns, image=image, audio=tone)]


@pytest.mark.parametrize("reduction", ["token", "sample"])
def test_a_packed_batch_gives_the_padded_batchs_losses_and_gradients(tiny_model, image, tone, arig_turns, reduction,
                                                                     monkeypatch):
    monkeypatch.setattr(tiny_model.config.loss, "lm_reduction", reduction)
    p = tiny_model.processor
    items = _mixed_samples(p, image, tone, arig_turns)
    lengths = [len(item["input_ids"]) for item in items]
    padded, packed = p.collate(items), p.pack(items, row_length=max(lengths) + min(lengths))
    assert packed["input_ids"].numel() < padded["input_ids"].numel() and len(packed["input_ids"]) < len(items)
    answer_tokens = (padded["labels"] != IGNORE_INDEX).sum()
    assert (packed["labels"] != IGNORE_INDEX).sum() == answer_tokens
    items_in_batch = tiny_model.loss_items(padded["labels"])
    assert items_in_batch == tiny_model.loss_items(packed["labels"], packed["sample_index"])
    assert items_in_batch == (answer_tokens if reduction == "token" else len(items))
    results = []
    for batch in (padded, packed):
        tiny_model.zero_grad(set_to_none=True)
        out = tiny_model(**batch, num_items_in_batch=items_in_batch)
        out.loss.backward()
        grads = {n: q.grad.clone() for n, q in tiny_model.named_parameters() if q.grad is not None}
        results.append((out, grads))
    (a, grads_a), (b, grads_b) = results
    tiny_model.zero_grad(set_to_none=True)
    assert a.ot_loss > 0 and a.ac_loss > 0
    for part in ("loss", "lm_loss", "ot_loss", "ac_loss"):
        assert torch.allclose(getattr(a, part), getattr(b, part), rtol=1e-5, atol=1e-6), part
    assert grads_a.keys() == grads_b.keys() and any("lora_A" in n for n in grads_a)
    for name, grad in grads_a.items():
        assert torch.allclose(grad, grads_b[name], rtol=1e-4, atol=1e-6), name


def test_packed_samples_do_not_see_each_other(tiny_model, image, tone, arig_turns):
    """The second sample of a packed row scores the same whatever sample sits before it (packing puts the
    longer first: the same ARIG with a box, or one with a long answer)."""
    p = tiny_model.processor
    items = _mixed_samples(p, image, tone, arig_turns)
    alone = tiny_model(**p.pack([items[4]], row_length=512))
    for before in (items[0], items[3]):
        row = p.pack([before, items[4]], row_length=len(before["input_ids"]) + len(items[4]["input_ids"]))
        assert len(row["input_ids"]) == 1 and row["sample_index"].unique().tolist() == [0, 1]
        scored = row["labels"][0, 1:] != IGNORE_INDEX
        second = row["sample_index"][0, 1:][scored] == 1  # answer logits of the ARIG sample
        logits = tiny_model(**row).logits[second]
        assert torch.allclose(logits, alone.logits, atol=1e-5)


def test_a_packed_batch_refuses_an_attention_mask(tiny_model, image, tone, arig_turns):
    p = tiny_model.processor
    packed = p.pack(_mixed_samples(p, image, tone, arig_turns), row_length=512)
    with pytest.raises(ValueError, match="packed batch"):
        tiny_model(**packed, attention_mask=torch.ones_like(packed["input_ids"]))


def test_sample_reduction_weighs_every_sample_alike_whatever_its_answer_length(tiny_model, image, tone, arig_turns,
                                                                              monkeypatch):
    p = tiny_model.processor
    items = _mixed_samples(p, image, tone, arig_turns)  # answers of 3 to 60 tokens
    lengths = [len(item["input_ids"]) for item in items]
    with torch.no_grad():
        alone = torch.stack([tiny_model(**p.collate([item])).lm_loss for item in items])  # each one's token mean
        by_token = tiny_model(**p.collate(items)).lm_loss
        monkeypatch.setattr(tiny_model.config.loss, "lm_reduction", "sample")
        by_sample = tiny_model(**p.collate(items)).lm_loss
        packed = tiny_model(**p.pack(items, row_length=max(lengths) + min(lengths))).lm_loss
    assert torch.allclose(by_sample, alone.mean(), rtol=1e-5) and torch.allclose(packed, alone.mean(), rtol=1e-5)
    # the token mean weighs each sample by its answer tokens, so it leans on the long answer
    answer_tokens = torch.tensor([float((item["labels"][1:] != -100).sum()) for item in items])
    assert torch.allclose(by_token, (alone * answer_tokens).sum() / answer_tokens.sum(), rtol=1e-5)
    assert answer_tokens.max() >= 10 * answer_tokens.min()


def test_an_unknown_lm_reduction_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match=r"loss.lm_reduction: expected 'token' or 'sample', got 'mean'"):
        MeerkatConfig.from_dict({"loss": {"lm_reduction": "mean"}})


def test_auxiliary_losses_over_a_split_batch_with_global_counts_equal_the_whole_batchs(tiny_model, image, tone,
                                                                                       arig_turns):
    p = tiny_model.processor
    items = _mixed_samples(p, image, tone, arig_turns)  # 3 image+audio pairs, 2 of them boxed
    whole = p.collate(items)
    assert tiny_model.aux_items(whole["input_ids"], whole["box_mask"]).tolist() == [3, 2]
    halves = [p.collate(items[:2]), p.collate(items[2:])]  # pairs 1 and 2, boxes 1 and 1: uneven
    assert [tiny_model.aux_items(h["input_ids"], h["box_mask"]).tolist() for h in halves] == [[1, 1], [2, 1]]
    with torch.no_grad():
        full = tiny_model(**whole)
        # what two processes compute: each half over the global counts / 2, then averaged
        split = [tiny_model(**h, num_aux_items=torch.tensor([3, 2]) / 2) for h in halves]
    for part in ("ot_loss", "ac_loss"):
        together = sum(getattr(out, part) for out in split) / 2
        assert torch.allclose(together, getattr(full, part), rtol=1e-5), part


def test_the_compiled_decoder_compiles_three_regions_for_every_layer_and_checkpoints_them(arig_batch):
    """Regional compilation: one graph each for attention, MLP and norm, however many layers, with no
    graph break under gradient checkpointing; the losses and LoRA gradients are the eager run's."""
    from torch._dynamo.utils import counters

    cfg = get_preset("tiny")
    cfg.llm.hf_config["num_hidden_layers"] = 3
    runs = []
    for compiled in (False, True):
        model = MeerkatModel.build(cfg)
        model.llm.gradient_checkpointing_enable()
        model.llm.enable_input_require_grads()
        if compiled:
            torch._dynamo.reset()
            counters.clear()
            model.compile_decoder()
        out = model(**arig_batch(model.processor))
        out.loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad and "lora" in n}
        runs.append((out, grads))
    assert counters["stats"]["unique_graphs"] == 3 and not counters["graph_break"]
    (eager, eager_grads), (ours, our_grads) = runs
    for part in ("loss", "lm_loss", "ot_loss", "ac_loss"):
        assert getattr(ours, part).item() == pytest.approx(getattr(eager, part).item(), rel=1e-5), part
    assert our_grads.keys() == eager_grads.keys() and any(g.abs().sum() > 0 for g in our_grads.values())
    assert all(torch.allclose(our_grads[n], g, atol=1e-6) for n, g in eager_grads.items())

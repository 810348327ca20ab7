import pytest
import torch

from meerkat import MeerkatModel, get_preset
from meerkat.chat import Meerkat
from meerkat.grounding import parse_boxes
from meerkat.prompt import encode_chat

QUESTION = "Which object is making this sound? Give its box."


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny checkpoint whose trained weights are not the fresh ones."""
    model = MeerkatModel.build(get_preset("tiny"))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def meerkat(checkpoint):
    return Meerkat.from_pretrained(checkpoint, device="cpu")


def test_chat_returns_text_and_the_boxes_it_states(meerkat, image, tone):
    reply = meerkat.chat(QUESTION, image=image, audio=tone, max_new_tokens=12)
    assert isinstance(reply.text, str) and reply.text
    assert reply.boxes == parse_boxes(reply.text).values and isinstance(reply.segments, list)


def test_streamed_text_equals_the_whole_reply(meerkat, image, tone):
    whole = meerkat.chat(QUESTION, image=image, audio=tone, max_new_tokens=12).text
    pieces = list(meerkat.chat(QUESTION, image=image, audio=tone, max_new_tokens=12, stream=True))
    assert len(pieces) >= 1 and "".join(pieces).strip() == whole


def test_batched_greedy_equals_one_by_one(meerkat, image, tone):
    quiet = (tone[0] * 0.1, tone[1])
    requests = [{"prompt": QUESTION, "image": image, "audio": tone},
                {"prompt": "Describe what you see and hear.", "image": image, "audio": quiet},
                {"prompt": "What do you hear?", "audio": tone}]
    batched = [r.text for r in meerkat.generate_batch(requests, max_new_tokens=10)]
    single = [meerkat.generate_batch([r], max_new_tokens=10)[0].text for r in requests]
    assert batched == single


def test_multi_turn_prompt_is_the_training_template_and_media_are_encoded_once(meerkat, image, tone, monkeypatch):
    calls, prompts = [], []
    hook = meerkat.model.vision.register_forward_hook(lambda *args: calls.append(1))
    encode = meerkat.model.processor.encode
    monkeypatch.setattr(meerkat.model.processor, "encode",
                        lambda *a, **k: prompts.append(out := encode(*a, **k)) or out)
    try:
        conversation = meerkat.conversation(image=image, audio=tone)
        first = conversation.ask(QUESTION, max_new_tokens=6)
        conversation.ask("When does it sound?", max_new_tokens=6)
    finally:
        hook.remove()
    assert len(calls) == 1  # one image, two turns
    trained = encode_chat(meerkat.model.tokenizer, [
        {"role": "user", "content": "<image>\n<audio>\n" + QUESTION},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "When does it sound?"},
        {"role": "assistant", "content": "From [1.0, 3.0] seconds."},
    ], num_image_tokens=49, num_audio_tokens=16)
    asked = prompts[-1]["input_ids"].tolist()
    assert trained.input_ids[: len(asked)] == asked


def test_merged_lora_gives_the_same_greedy_reply(checkpoint, meerkat, image, tone):
    merged = Meerkat.from_pretrained(checkpoint, device="cpu", merge_lora=True)
    assert not hasattr(merged.model.llm, "peft_config")
    a = meerkat.chat(QUESTION, image=image, audio=tone, max_new_tokens=8).text
    assert merged.chat(QUESTION, image=image, audio=tone, max_new_tokens=8).text == a


def test_bad_requests_are_clear_errors(meerkat, image, tone, tmp_path):
    with pytest.raises(ValueError, match="the prompt is empty"):
        meerkat.chat("  ", image=image, audio=tone)
    with pytest.raises(FileNotFoundError, match="no image file at"):
        meerkat.chat(QUESTION, image=tmp_path / "missing.png", audio=tone)
    with pytest.raises(ValueError, match="past the model's context of 1024"):
        meerkat.chat("word " * 2000, image=image, audio=tone)


def test_cli_answers_once_with_prompt(checkpoint, tmp_path, capsys):
    from PIL import Image

    from meerkat.chat import main

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "a.png")
    assert main(["--checkpoint", str(checkpoint), "--image", str(tmp_path / "a.png"), "--prompt", "What is this?",
                 "--max_new_tokens", "5", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip()


def test_cli_interactive_loop_handles_its_commands(checkpoint, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from meerkat.chat import main

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "a.png")
    lines = iter(["/save nothing.png", f"/image {tmp_path / 'a.png'}", "Where is it?", f"/save {tmp_path / 'r.png'}",
                  "/reset", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["--checkpoint", str(checkpoint), "--max_new_tokens", "4", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "nothing to save" in out and "new conversation: image=" in out and "meerkat> " in out
    assert f"saved {tmp_path / 'r.png'}" in out and (tmp_path / "r.png").is_file()


def test_static_cache_decodes_the_same_tokens(checkpoint, meerkat, image, tone):
    static = Meerkat.from_pretrained(checkpoint, device="cpu", static_cache=True)
    requests = [{"prompt": QUESTION, "image": image, "audio": tone}, {"prompt": "What do you hear?", "audio": tone}]
    assert [r.text for r in static.generate_batch(requests, max_new_tokens=10)] == \
        [r.text for r in meerkat.generate_batch(requests, max_new_tokens=10)]


def test_a_model_without_system_prompt_chats_as_it_trained(tmp_path, image, tone, monkeypatch):
    cfg = get_preset("tiny")
    cfg.llm.system_prompt = False
    MeerkatModel.build(cfg).save_pretrained(tmp_path)
    meerkat = Meerkat.from_pretrained(tmp_path, device="cpu")
    assert meerkat.model.processor.system is None  # read back from the checkpoint's config
    prompts = []
    encode = meerkat.model.processor.encode
    monkeypatch.setattr(meerkat.model.processor, "encode", lambda *a, **k: prompts.append(out := encode(*a, **k)) or out)
    meerkat.chat(QUESTION, image=image, audio=tone, max_new_tokens=4)
    expected = encode_chat(meerkat.model.tokenizer, [{"role": "user", "content": "<image>\n<audio>\n" + QUESTION}],
                           num_image_tokens=49, num_audio_tokens=16, add_generation_prompt=True, system=None)
    assert prompts[-1]["input_ids"].tolist() == expected.input_ids
    assert "<<SYS>>" not in meerkat.model.tokenizer.decode(expected.input_ids)

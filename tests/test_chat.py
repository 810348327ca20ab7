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


def test_a_generation_that_fails_while_streaming_raises_instead_of_waiting(meerkat, image, tone, monkeypatch):
    import threading

    def broken(**kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(meerkat.model.llm, "generate", broken)
    outcome = []

    def read():
        try:
            outcome.append(list(meerkat.chat(QUESTION, image=image, audio=tone, stream=True)))
        except RuntimeError as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert len(outcome) == 1 and str(outcome[0]) == "out of memory"


def test_prompt_and_new_tokens_must_fit_the_context(meerkat, image, tone):
    with pytest.raises(ValueError, match="and max_new_tokens 1024: together past the model's context of 1024"):
        meerkat.chat(QUESTION, image=image, audio=tone, max_new_tokens=1024)
    with pytest.raises(ValueError, match="max_new_tokens must be at least 1, got 0"):
        list(meerkat.chat(QUESTION, image=image, audio=tone, max_new_tokens=0, stream=True))


def test_history_as_pairs_without_placeholders_is_the_same_conversation(meerkat, image, tone):
    earlier = [{"role": "user", "content": "<image>\n<audio>\n" + QUESTION}, {"role": "assistant", "content": "A square."}]
    reply = meerkat.chat("When does it sound?", image=image, audio=tone, history=earlier, max_new_tokens=8).text
    assert meerkat.chat("When does it sound?", image=image, audio=tone, history=[(QUESTION, "A square.")],
                        max_new_tokens=8).text == reply
    assert meerkat.chat("When does it sound?", image=image, audio=tone, max_new_tokens=8,
                        history=[{"role": "user", "content": QUESTION}, earlier[1]]).text == reply
    with pytest.raises(TypeError, match=r"history\[0\] is 'hello'"):
        meerkat.chat("When?", image=image, audio=tone, history=["hello"])


def test_float16_keeps_the_audio_tower_in_its_own_dtype(checkpoint, tone, monkeypatch):
    loud = (3 * tone[0], tone[1])  # clipped at ±1 when read: a full-scale tone, whose log-mel overflows float16
    half = Meerkat.from_pretrained(checkpoint, device="cpu", dtype="fp16")
    assert half.model.llm.dtype == torch.float16 and half.model.vision_projector[0].weight.dtype == torch.float16
    assert {p.dtype for p in half.model.audio.parameters()} == {torch.float32}
    assert torch.isfinite(half.encode_media(audio=loud).audio).all()
    assert Meerkat.from_pretrained(checkpoint, device="cpu", dtype="bf16").model.llm.dtype == torch.bfloat16
    monkeypatch.setattr(MeerkatModel, "from_pretrained", lambda *a: pytest.fail("loaded the model before refusing"))
    with pytest.raises(ValueError, match="dtype 'fp8' is not one of float32, fp32, bfloat16, bf16, float16, fp16"):
        Meerkat.from_pretrained(checkpoint, device="cpu", dtype="fp8")


def test_segments_may_reach_the_end_of_chunked_audio(meerkat):
    from meerkat.chat import _Media

    width = meerkat.model.audio.width
    one, two = _Media(audio=torch.zeros(1, 16, width)), _Media(audio=torch.zeros(2, 16, width))
    assert meerkat._response("At [2.0, 4.0] and [12.5, 14.0].", two).segments == [[2.0, 4.0], [12.5, 14.0]]
    assert meerkat._response("At [2.0, 4.0] and [12.5, 14.0].", one).segments == [[2.0, 4.0]]


def test_an_empty_batch_gives_no_replies(meerkat):
    assert meerkat.generate_batch([]) == []


def test_cli_says_what_went_wrong_in_one_line(checkpoint, tmp_path, capsys):
    from meerkat.chat import main

    assert main(["--checkpoint", str(checkpoint), "--image", str(tmp_path / "no.png"), "--prompt", "What?",
                 "--device", "cpu"]) == 1
    assert capsys.readouterr().err == f"error: no image file at {tmp_path / 'no.png'}\n"
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(checkpoint), "--device", "gpu"])
    assert "argument --device: Expected one of" in capsys.readouterr().err


def test_cli_names_a_truncated_checkpoint_file_in_one_line(checkpoint, tmp_path, capsys):
    import shutil

    from meerkat.chat import main

    damaged = shutil.copytree(checkpoint, tmp_path / "ckpt")
    (damaged / "adapter_model.safetensors").write_bytes((damaged / "adapter_model.safetensors").read_bytes()[:-100])
    assert main(["--checkpoint", str(damaged), "--prompt", "What?", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {damaged / 'adapter_model.safetensors'} is truncated or not a safetensors file (")
    assert err.count("\n") == 1


def test_cli_loop_survives_bad_commands(checkpoint, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from meerkat.chat import main

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "a.png")
    lines = iter([f"/image {tmp_path / 'a.png'}", f"/image {tmp_path / 'gone.png'}", "/imgae x", "Where is it?",
                  f"/save {tmp_path / 'no_dir' / 'r.png'}", "word " * 2000, "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["--checkpoint", str(checkpoint), "--max_new_tokens", "4", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"(error: no image file at {tmp_path / 'gone.png'})" in out
    assert "(unknown command /imgae; commands:" in out
    assert next(line for line in out.splitlines() if "unknown command" in line).endswith("anything else is a question)")
    assert out.count("meerkat> ") == 2  # the question after the failed /image is still about a.png
    assert f"(error: [Errno 2] No such file or directory: '{tmp_path / 'no_dir' / 'r.png'}')" in out
    assert "past the model's context of 1024; shorten the question or the history, or lower max_new_tokens; " \
           "/reset starts a new conversation)" in out


def test_a_history_of_only_a_system_turn_still_puts_the_media_in_the_question(meerkat, image, tone, monkeypatch):
    prompts = []
    encode = meerkat.model.processor.encode
    monkeypatch.setattr(meerkat.model.processor, "encode", lambda *a, **k: prompts.append(out := encode(*a, **k)) or out)
    meerkat.chat(QUESTION, image=image, audio=tone, history=[{"role": "system", "content": "Be brief."}],
                 max_new_tokens=2)
    expected = encode_chat(meerkat.model.tokenizer, [{"role": "user", "content": "<image>\n<audio>\n" + QUESTION}],
                           num_image_tokens=49, num_audio_tokens=16, add_generation_prompt=True, system="Be brief.")
    assert prompts[-1]["input_ids"].tolist() == expected.input_ids


def test_a_batch_request_with_a_key_it_does_not_know_is_an_error(meerkat, image):
    with pytest.raises(ValueError, match=r"requests\[1\] has key\(s\) \['images'\]; a request takes 'prompt'"):
        meerkat.generate_batch([{"prompt": QUESTION}, {"prompt": QUESTION, "images": image}])
    with pytest.raises(ValueError, match=r"requests\[0\] has no 'prompt'"):
        meerkat.generate_batch([{"image": image}])


def test_task_helpers_ask_in_phrasings_the_model_was_trained_on(meerkat, image, tone, monkeypatch):
    from instruct_data import templates

    asked = []
    monkeypatch.setattr(meerkat, "chat", lambda prompt, **kwargs: asked.append(prompt) or meerkat._response("yes"))
    statement = "The sound is made by the red star."
    meerkat.ground(image, tone), meerkat.localize(image, tone), meerkat.caption(image, tone)
    meerkat.fact_check(image, tone, statement)
    assert asked[0] in templates.ARIG_INSTRUCTIONS and asked[1] in templates.IGATL_INSTRUCTIONS
    assert asked[2] in templates.AVC_INSTRUCTIONS
    assert asked[3] in [t.format(statement=statement) for t in templates.AVFC_INSTRUCTIONS]

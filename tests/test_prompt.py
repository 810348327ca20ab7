import pytest

from meerkat.prompt import DEFAULT_SYSTEM, IGNORE_INDEX, encode_chat
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN

TURNS = [
    {"role": "user", "content": "<image>\n<audio>\nWhere is the sound?"},
    {"role": "assistant", "content": "The dog at [0.12, 0.30, 0.56, 0.80]."},
    {"role": "user", "content": "When does it bark?"},
    {"role": "assistant", "content": "From [1.0, 3.5] seconds."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return tiny_model.tokenizer


def _answers(tokenizer, encoded) -> list[str]:
    """Decode each run of labelled tokens."""
    runs, run = [], []
    for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
        if label == IGNORE_INDEX:
            if run:
                runs.append(run)
            run = []
        else:
            assert label == token
            run.append(label)
    runs.append(run) if run else None
    return [tokenizer.decode(r) for r in runs]


def test_labels_are_exactly_the_assistant_answers_and_eos(tokenizer):
    encoded = encode_chat(tokenizer, TURNS, num_image_tokens=3, num_audio_tokens=2)
    assert _answers(tokenizer, encoded) == [
        "The dog at [0.12, 0.30, 0.56, 0.80].</s>",
        "From [1.0, 3.5] seconds.</s>",
    ]


def test_ids_follow_the_llama2_chat_template(tokenizer):
    encoded = encode_chat(tokenizer, TURNS, num_image_tokens=1, num_audio_tokens=1, system="Be brief.")

    def ids(text):
        return tokenizer(text, add_special_tokens=False).input_ids

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    assert encoded.input_ids == (
        [bos] + ids("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\n<audio>\nWhere is the sound? [/INST]")
        + ids("The dog at [0.12, 0.30, 0.56, 0.80].") + [eos]
        + [bos] + ids("[INST] When does it bark? [/INST]") + ids("From [1.0, 3.5] seconds.") + [eos]
    )


def test_placeholders_expand_to_the_encoder_token_counts(tokenizer):
    encoded = encode_chat(tokenizer, TURNS, num_image_tokens=49, num_audio_tokens=16)
    image_id, audio_id = tokenizer.convert_tokens_to_ids([IMAGE_TOKEN, AUDIO_TOKEN])
    assert encoded.input_ids.count(image_id) == 49
    assert encoded.input_ids.count(audio_id) == 16
    first = encoded.input_ids.index(image_id)
    assert encoded.input_ids[first : first + 49] == [image_id] * 49  # one contiguous run


def test_generation_prompt_is_the_training_prefix(tokenizer):
    full = encode_chat(tokenizer, TURNS, num_image_tokens=4, num_audio_tokens=2)
    prompt = encode_chat(tokenizer, TURNS[:3], num_image_tokens=4, num_audio_tokens=2, add_generation_prompt=True)
    assert full.input_ids[: len(prompt.input_ids)] == prompt.input_ids
    assert all(label == IGNORE_INDEX for label in prompt.labels[-5:])


def test_system_turn_replaces_the_default(tokenizer):
    with_system = [{"role": "system", "content": "Answer in French."}] + TURNS[:2]
    text = tokenizer.decode(encode_chat(tokenizer, with_system, num_image_tokens=1, num_audio_tokens=1).input_ids)
    assert "Answer in French." in text and DEFAULT_SYSTEM[:20] not in text


@pytest.mark.parametrize(
    ("turns", "generation", "message"),
    [
        ([], False, "at least one user turn"),
        ([TURNS[1]], False, "turn 0 has role 'assistant'"),
        ([TURNS[0], {"role": "assistant", "content": "  "}], False, r"turn 1 \(assistant\) has empty"),
        (TURNS[:1], False, "must end with an assistant turn"),
        (TURNS[:2], True, "must end with a user turn"),
        ([TURNS[0], {"role": "assistant", "content": "see <image>"}], False, "contains a media placeholder"),
    ],
)
def test_malformed_conversations_are_rejected(tokenizer, turns, generation, message):
    with pytest.raises(ValueError, match=message):
        encode_chat(tokenizer, turns, num_image_tokens=1, num_audio_tokens=1, add_generation_prompt=generation)

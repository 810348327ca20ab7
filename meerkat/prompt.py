"""The Llama-2 chat template and its label mask: the one encoder of conversations that training,
inference and evaluation share, so the prompt a model is trained on is the prompt it is asked with.

    <s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user 1} [/INST] {answer 1} </s><s>[INST] {user 2} [/INST] ...

Labels are the ids of each assistant answer and its `</s>`; everything else is -100. Each
`<image>` / `<audio>` placeholder expands to as many copies as its encoder yields tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN

IGNORE_INDEX = -100
DEFAULT_SYSTEM = (
    "You are Meerkat, an assistant that looks at an image and listens to audio. Give boxes as "
    "[x1, y1, x2, y2] normalised to the image size, and time segments as [start, end] in seconds."
)


@dataclass
class EncodedChat:
    input_ids: list[int]
    labels: list[int]


def encode_chat(
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[dict],
    *,
    num_image_tokens: int,
    num_audio_tokens: int,
    system: str | None = DEFAULT_SYSTEM,
    add_generation_prompt: bool = False,
) -> EncodedChat:
    """Token ids and labels of a conversation of alternating user/assistant turns.

    A leading {"role": "system"} turn replaces `system`. For training the conversation ends with an
    assistant turn; with `add_generation_prompt` it ends with a user turn and the ids stop right
    after its `[/INST]`, where generation continues.
    """
    turns = list(conversations)
    if turns and turns[0].get("role") == "system":
        system = turns.pop(0)["content"]
    _check_turns(turns, add_generation_prompt)
    expand = {
        tokenizer.convert_tokens_to_ids(IMAGE_TOKEN): num_image_tokens,
        tokenizer.convert_tokens_to_ids(AUDIO_TOKEN): num_audio_tokens,
    }

    def encode(text: str) -> list[int]:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        return [i for token in ids for i in [token] * expand.get(token, 1)]

    input_ids: list[int] = []
    labels: list[int] = []
    for index in range(0, len(turns), 2):
        user = turns[index]["content"].strip()
        if index == 0 and system:
            user = f"<<SYS>>\n{system}\n<</SYS>>\n\n{user}"
        prompt = [tokenizer.bos_token_id] + encode(f"[INST] {user} [/INST]")
        input_ids += prompt
        labels += [IGNORE_INDEX] * len(prompt)
        if index + 1 < len(turns):
            answer = encode(turns[index + 1]["content"].strip()) + [tokenizer.eos_token_id]
            input_ids += answer
            labels += answer
    return EncodedChat(input_ids, labels)


def _check_turns(turns: list[dict], add_generation_prompt: bool) -> None:
    if not turns:
        raise ValueError("a conversation needs at least one user turn")
    for index, turn in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn.get("role") != expected:
            raise ValueError(f"turn {index} has role {turn.get('role')!r}; turns must alternate user/assistant, starting with user")
        if not isinstance(turn.get("content"), str) or not turn["content"].strip():
            raise ValueError(f"turn {index} ({expected}) has empty or missing 'content'")
        if expected == "assistant" and (IMAGE_TOKEN in turn["content"] or AUDIO_TOKEN in turn["content"]):
            raise ValueError(f"turn {index} (assistant) contains a media placeholder; put {IMAGE_TOKEN}/{AUDIO_TOKEN} in user turns")
    last = turns[-1]["role"]
    if add_generation_prompt and last != "user":
        raise ValueError("a generation prompt must end with a user turn")
    if not add_generation_prompt and last != "assistant":
        raise ValueError("a training conversation must end with an assistant turn (the answer to learn)")

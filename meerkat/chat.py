"""Chat with a trained Meerkat about an image and a sound, and get its grounded answers as data.

    from meerkat.chat import Meerkat
    meerkat = Meerkat.from_pretrained("runs/tiny_synth/final")
    reply = meerkat.chat("Which object is making this sound? Give its box.", image="scene.png", audio="scene.flac")
    reply.text, reply.boxes, reply.segments

Prompts go through the training template (`meerkat.prompt`), so a question is asked exactly the way
the model was trained on it. A `Conversation` encodes its image and audio once and reuses the
features on every turn.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from threading import Thread
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from meerkat.decoding import StaticDecoder
from meerkat.grounding import parse_boxes, parse_segments, parse_verdict
from meerkat.media import load_image
from meerkat.config import MeerkatConfig
from meerkat.model import CONFIG_FILE, PUBLISHED, MeerkatModel
from meerkat.processor import OWN_SYSTEM
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN


@dataclass
class Response:
    """A reply with the boxes ([x1, y1, x2, y2], normalised) and time segments (seconds) it states."""

    text: str
    boxes: list[list[float]] = field(default_factory=list)
    segments: list[list[float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Media:
    """Encoder outputs of one image and one audio, computed once: (tokens, width), (clips, tokens, width)."""

    image: torch.Tensor | None = None
    audio: torch.Tensor | None = None


class Meerkat:
    def __init__(self, model: MeerkatModel, static_cache: bool = False):
        self.model = model.eval()
        self._decoder = StaticDecoder(model.llm) if static_cache else None

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, dtype: str | torch.dtype | None = None,
                        merge_lora: bool = False, static_cache: bool = False,
                        base_paths: dict[str, str | Path | None] | None = None) -> Meerkat:
        """Load a checkpoint (and the base weights its config names, or `base_paths` says: see
        `MeerkatModel.from_pretrained`). `merge_lora` folds the adapter into the LLM (not a QLoRA one);
        `static_cache` decodes with `meerkat.decoding.StaticDecoder` — a preallocated KV cache and, on
        CUDA, one compiled graph per token (same tokens as `generate`; streaming keeps `generate`)."""
        # Both refusals come before the base weights, gigabytes at 7B, are loaded.
        dtype = None if dtype is None else _torch_dtype(dtype)
        config = Path(path) / CONFIG_FILE
        if merge_lora and config.is_file() and MeerkatConfig.load(config).llm.load_in_4bit:
            raise ValueError(f"merge_lora: {path} is a QLoRA checkpoint (llm.load_in_4bit); merging would round its "
                             "adapter into the 4-bit weights and change the replies, so QLoRA adapters are served "
                             "unmerged: leave merge_lora off")
        model = MeerkatModel.from_pretrained(path, base_paths)
        if merge_lora and model.config.llm.lora:
            model.llm = model.llm.merge_and_unload()
        if dtype is not None:
            model = model.to(dtype)
            if dtype == torch.float16:  # HTSAT's log-mel filterbank overflows float16 on loud audio
                model.audio.to(getattr(torch, model.config.audio.dtype))
        return cls(model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")), static_cache)

    @property
    def device(self) -> torch.device:
        return self.model.vision_projector[0].weight.device

    def encode_media(self, image: Any = None, audio: Any = None) -> _Media:
        """Run the frozen towers once on an image (path / PIL / array) and audio (path / (array, rate))."""
        return self._encode_many([image], [audio])[0]

    @torch.no_grad()
    def _encode_many(self, images: list[Any], audios: list[Any]) -> list[_Media]:
        """One vision and one audio forward for all requests (None where a request has no such media)."""
        media = [_Media() for _ in images]
        shown = [i for i, image in enumerate(images) if image is not None]
        if shown:
            pixels = torch.stack([self.model.vision.transform(load_image(images[i])) for i in shown]).to(self.device)
            for i, tokens in zip(shown, self.model.vision(pixels)):  # (tokens, width) each
                media[i].image = tokens
        heard = [i for i, audio in enumerate(audios) if audio is not None]
        if heard:
            clips = [self.model.processor.load_clips(audios[i]) for i in heard]  # (clips, T) each
            tokens = self.model.audio(torch.cat(clips).to(self.device))  # (all clips, tokens, width)
            for i, part in zip(heard, tokens.split([len(c) for c in clips])):
                media[i].audio = part
        return media

    def conversation(self, image: Any = None, audio: Any = None, system: str | None | object = OWN_SYSTEM) -> Conversation:
        """A multi-turn chat about `image` and `audio`; `system` replaces the model's own system prompt (None: none)."""
        return Conversation(self, self.encode_media(image, audio), system)

    def chat(self, prompt: str, image: Any = None, audio: Any = None, history: list[dict] | None = None,
             stream: bool = False, **generation) -> Response | Iterator[str]:
        """One reply to `prompt` about `image` and `audio`, after `history` (earlier turns: role/content
        dicts or (question, answer) pairs; the media placeholders go in front of the first question unless
        it has them). `stream=True` yields text pieces instead."""
        conversation = self.conversation(image, audio)
        conversation.turns = _history_turns(history or [], conversation.media)
        return conversation.ask(prompt, stream=stream, **generation)

    def generate_batch(self, requests: list[dict], **generation) -> list[Response]:
        """Many one-turn requests ({"prompt", "image", "audio"}) in one left-padded batch."""
        if not requests:
            return []
        for i, request in enumerate(requests):
            _check_request(i, request)
        turns = [[_user_turn(r["prompt"], r.get("image") is not None, r.get("audio") is not None)] for r in requests]
        media = self._encode_many([r.get("image") for r in requests], [r.get("audio") for r in requests])
        return self._generate(turns, media, OWN_SYSTEM, **generation)

    def _inputs(self, turns: list[list[dict]], media: list[_Media], system: str | None | object,
                max_new_tokens: int) -> dict:
        processor = self.model.processor
        items = [processor.encode(t, add_generation_prompt=True, system=system, image_features=m.image,
                                  audio_features=m.audio) for t, m in zip(turns, media)]
        limit = self.model.llm.config.max_position_embeddings
        for item in items:
            if len(item["input_ids"]) + max_new_tokens > limit:
                raise ValueError(f"the prompt is {len(item['input_ids'])} tokens and max_new_tokens {max_new_tokens}: "
                                 f"together past the model's context of {limit}; shorten the question or the "
                                 "history, or lower max_new_tokens")
        batch = processor.collate(items, padding_side="left")
        embeds, *_ = self.model.embed(batch["input_ids"].to(self.device),
                                      image_features=_on(batch.get("image_features"), self.device),
                                      audio_features=_on(batch.get("audio_features"), self.device))
        return {"inputs_embeds": embeds, "attention_mask": batch["attention_mask"].to(self.device)}

    def _generation_kwargs(self, max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                           min_new_tokens: int = 0) -> dict:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        tokenizer = self.model.tokenizer
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        return {"max_new_tokens": max_new_tokens, "min_new_tokens": min_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id, **sampling}

    @torch.no_grad()
    def _generate(self, turns: list[list[dict]], media: list[_Media], system: str | None | object, **generation) -> list[Response]:
        generate = self._decoder.generate if self._decoder is not None else self.model.llm.generate
        kwargs = self._generation_kwargs(**generation)
        output = generate(**self._inputs(turns, media, system, kwargs["max_new_tokens"]), **kwargs)
        texts = self.model.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [self._response(text, m) for text, m in zip(texts, media)]

    def _stream(self, turns: list[dict], media: _Media, system: str | None | object, **generation) -> Iterator[str]:
        streamer = _TextDeltas(self.model.tokenizer)
        kwargs = self._generation_kwargs(**generation)
        kwargs |= self._inputs([turns], [media], system, kwargs["max_new_tokens"]) | {"streamer": streamer}
        failed: list[BaseException] = []

        def run() -> None:
            try:
                with torch.no_grad():
                    self.model.llm.generate(**kwargs)
            except BaseException as error:  # handed to the reader, which would otherwise wait for ever
                failed.append(error)
                streamer.queue.put(None)

        thread = Thread(target=run, daemon=True)
        thread.start()
        yield from iter(streamer.queue.get, None)
        thread.join()
        if failed:
            raise failed[0]

    def _response(self, text: str, media: _Media | None = None) -> Response:
        """`text` with its boxes and segments; segments may reach the end of every clip the audio filled."""
        text = text.strip()
        clips = len(media.audio) if media is not None and media.audio is not None else 1
        segments = parse_segments(text, duration=clips * self.model.config.audio.clip_seconds)
        boxes = parse_boxes(text)
        return Response(text, boxes.values, segments.values, boxes.warnings + segments.warnings)

    # ---- task helpers: the grounded answer as data, asked in phrasings of the training templates ----

    def ground(self, image: Any, audio: Any) -> list[float] | None:
        """The box of the object making the sound, or None when the reply states none."""
        boxes = self.chat("Which object in the image is making this sound? Answer with its bounding box "
                          "[x1, y1, x2, y2], normalized to the image size.", image=image, audio=audio).boxes
        return boxes[0] if boxes else None

    def localize(self, image: Any, audio: Any) -> list[list[float]]:
        """When the pictured object sounds: [start, end] segments in seconds."""
        return self.chat("When does the object shown in the picture make a sound in the audio? "
                         "Give the time segments in seconds.", image=image, audio=audio).segments

    def fact_check(self, image: Any, audio: Any, statement: str) -> bool:
        reply = self.chat(f"Is the following statement true or false? {statement}",
                          image=image, audio=audio).text
        return parse_verdict(reply) is True  # no verdict in the reply counts as not confirmed

    def answer(self, image: Any, audio: Any, question: str) -> str:
        return self.chat(question, image=image, audio=audio).text

    def caption(self, image: Any, audio: Any) -> str:
        return self.chat("Describe what you see and hear in one sentence.", image=image, audio=audio).text


class Conversation:
    """Turns in the training template; the image and audio are encoded once, when the conversation starts."""

    def __init__(self, meerkat: Meerkat, media: _Media, system: str | None | object = OWN_SYSTEM):
        self.meerkat, self.media, self.system = meerkat, media, system
        self.turns: list[dict] = []

    def ask(self, prompt: str, stream: bool = False, **generation) -> Response | Iterator[str]:
        first = not any(turn.get("role") == "user" for turn in self.turns)  # a system turn holds no media
        turns = self.turns + [_user_turn(prompt, first and self.media.image is not None,
                                         first and self.media.audio is not None)]
        if stream:
            return self._streamed(turns, generation)
        response = self.meerkat._generate([turns], [self.media], self.system, **generation)[0]
        self.turns = turns + [{"role": "assistant", "content": response.text}]
        return response

    def _streamed(self, turns: list[dict], generation: dict) -> Iterator[str]:
        pieces = []
        for piece in self.meerkat._stream(turns, self.media, self.system, **generation):
            pieces.append(piece)
            yield piece
        self.turns = turns + [{"role": "assistant", "content": "".join(pieces).strip()}]


class _TextDeltas(BaseStreamer):
    """Queues the text a generation adds, piece by piece. The whole text is decoded at every token and
    only its new end is sent; while the last token is a byte-fallback piece (part of a character that
    may need more bytes) nothing is sent, so the pieces join to exactly the non-streamed text."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.sent, self.queue = tokenizer, [], "", Queue()

    def put(self, value: torch.Tensor) -> None:
        self.ids += value.reshape(-1).tolist()  # the first call carries the (empty) prompt ids
        if self.ids and not _BYTE_PIECE.fullmatch(self.tokenizer.convert_ids_to_tokens(self.ids[-1])):
            self._send(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def end(self) -> None:
        self._send(self.tokenizer.decode(self.ids, skip_special_tokens=True))
        self.queue.put(None)

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.queue.put(text[len(self.sent):])
            self.sent = text


_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _user_turn(prompt: str, image: bool, audio: bool) -> dict:
    if not prompt or not prompt.strip():
        raise ValueError("the prompt is empty; ask a question")
    prefix = (f"{IMAGE_TOKEN}\n" if image else "") + (f"{AUDIO_TOKEN}\n" if audio else "")
    return {"role": "user", "content": prefix + prompt.strip()}


def _check_request(index: int, request: dict) -> None:
    """A misspelt key would silently drop its image or audio from the request."""
    if not isinstance(request, dict) or "prompt" not in request:
        raise ValueError(f"requests[{index}] has no 'prompt': pass {{'prompt': ..., 'image': ..., 'audio': ...}} dicts")
    unknown = sorted(set(request) - {"prompt", "image", "audio"})
    if unknown:
        raise ValueError(f"requests[{index}] has key(s) {unknown}; a request takes 'prompt', 'image' and 'audio'")


def _history_turns(history: list, media: _Media) -> list[dict]:
    """Earlier turns as role/content dicts, given as such or as (question, answer) pairs, with the media
    placeholders put in front of the first question when the caller left them out."""
    turns = []
    for i, turn in enumerate(history):
        if isinstance(turn, dict):
            turns.append(dict(turn))
        elif isinstance(turn, (tuple, list)) and len(turn) == 2:
            turns += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
        else:
            raise TypeError(f"history[{i}] is {turn!r}; pass {{'role': ..., 'content': ...}} dicts or "
                            "(question, answer) pairs")
    first = next((turn for turn in turns if turn.get("role") == "user"), None)
    if first is not None and IMAGE_TOKEN not in first["content"] and AUDIO_TOKEN not in first["content"]:
        first["content"] = _user_turn(first["content"], media.image is not None, media.audio is not None)["content"]
    return turns


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)} or a torch.dtype")
    return _DTYPES[dtype]


def _on(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return tensor.to(device) if tensor is not None else None


HELP = """commands: /image PATH, /audio PATH (each starts a new conversation), /reset, /save PNG (the last
reply's boxes on the image), /quit; anything else is a question"""


def main(argv: list[str] | None = None) -> int:
    """`python -m meerkat.chat --checkpoint DIR [--image I] [--audio A] [--prompt P]`: one reply with
    --prompt, otherwise an interactive loop."""
    parser = argparse.ArgumentParser(prog="python -m meerkat.chat", description=main.__doc__ + "\n\n" + HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a folder written by save_pretrained / train/sft.py")
    parser.add_argument("--image")
    parser.add_argument("--audio")
    parser.add_argument("--prompt", help="ask once, print the reply and exit")
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument("--device", type=_device, help="cpu, cuda, cuda:1, … (default: cuda when there is one)")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), help="cast the model (default: as trained)")
    add_base_argument(parser)
    args = parser.parse_args(argv)
    generation = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p}
    try:
        meerkat = Meerkat.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype,
                                          base_paths=dict(args.base))
        if args.prompt is not None:
            _print_reply(meerkat.chat(args.prompt, image=args.image, audio=args.audio, **generation))
            return 0
        conversation = meerkat.conversation(args.image, args.audio)
    except (OSError, ValueError) as error:  # a missing or unreadable file, a bad input: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    return _loop(meerkat, conversation, args.image, args.audio, generation)


def _loop(meerkat: Meerkat, conversation: Conversation, image: str | None, audio: str | None, generation: dict) -> int:
    """The interactive chat; a command that fails says why and leaves the conversation as it was."""
    last = None
    print(HELP)
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            return 0
        command, _, value = line.partition(" ")
        value = value.strip()
        try:
            if command == "/quit":
                return 0
            if command in ("/image", "/audio", "/reset"):
                new_image = (value or image) if command == "/image" else image
                new_audio = (value or audio) if command == "/audio" else audio
                conversation, last = meerkat.conversation(new_image, new_audio), None
                image, audio = new_image, new_audio
                print(f"(new conversation: image={image}, audio={audio})")
            elif command == "/save":
                if last is None or image is None:
                    print("(nothing to save: ask about an image first)")
                else:
                    from meerkat.viz import draw_boxes

                    draw_boxes(image, predicted=last.boxes, out=value or "reply.png")
                    print(f"(saved {value or 'reply.png'} with {len(last.boxes)} box(es))")
            elif command.startswith("/"):
                print(f"(unknown command {command}; {' '.join(HELP.split())})")  # one line, like every error
            elif line:
                print("meerkat> ", end="", flush=True)
                try:
                    for piece in conversation.ask(line, stream=True, **generation):
                        print(piece, end="", flush=True)
                finally:
                    print()
                last = meerkat._response(conversation.turns[-1]["content"], conversation.media)
                _print_fields(last)
        except (OSError, ValueError) as error:
            print(f"(error: {error}; /reset starts a new conversation)" if command[:1] != "/" else f"(error: {error})")


def add_base_argument(parser: argparse.ArgumentParser) -> None:
    """`--base KEY=PATH`, repeatable: where base weights a checkpoint names are now (`dict(args.base)` is
    `from_pretrained`'s `base_paths`), so a checkpoint moved to another machine loads from the command line."""
    parser.add_argument("--base", type=_base_path, action="append", default=[], metavar="KEY=PATH",
                        help=f"where a base weight file the checkpoint names is now; KEY is one of "
                             f"{', '.join(PUBLISHED)}; repeat for each")


def _base_path(text: str) -> tuple[str, str]:
    key, sep, path = text.partition("=")
    if not sep or key not in PUBLISHED or not path:
        raise argparse.ArgumentTypeError(f"expected KEY=PATH with KEY one of {', '.join(PUBLISHED)}, got {text!r}")
    return key, path


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(str(error).split("\n")[0]) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("there is no CUDA device here")
    return device


def _print_reply(reply: Response) -> None:
    print(reply.text)
    _print_fields(reply)


def _print_fields(reply: Response) -> None:
    if reply.boxes or reply.segments:
        print(f"  boxes: {reply.boxes}  segments: {reply.segments}")


if __name__ == "__main__":
    raise SystemExit(main())

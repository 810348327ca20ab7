import os

# Belt and braces: nothing in the suite may wait on the model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from meerkat import MeerkatModel, get_preset  # noqa: E402

ARIG_TURNS = [
    {"role": "user", "content": "<image>\n<audio>\nWhich object makes this sound? Give its box."},
    {"role": "assistant", "content": "The red square at [0.10, 0.20, 0.40, 0.60]."},
]


@pytest.fixture
def arig_turns() -> list[dict]:
    return [dict(turn) for turn in ARIG_TURNS]


@pytest.fixture(scope="session")
def tiny_model() -> MeerkatModel:
    return MeerkatModel.build(get_preset("tiny"))


@pytest.fixture
def image() -> Image.Image:
    pixels = np.full((240, 320, 3), 40, dtype=np.uint8)
    pixels[48:144, 32:128] = (220, 30, 30)  # a red square at [0.10, 0.20, 0.40, 0.60]
    return Image.fromarray(pixels)


@pytest.fixture
def tone() -> tuple[np.ndarray, int]:
    t = np.arange(48_000 * 2) / 48_000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48_000


@pytest.fixture
def arig_batch(image, tone):
    """processor → two ARIG samples, the first with a box for AVACE (placeholder ids depend on the vocabulary)."""
    def make(p):
        return p.collate([p.encode(ARIG_TURNS, image=image, audio=tone, box=[0.1, 0.2, 0.4, 0.6]),
                          p.encode(ARIG_TURNS, image=image, audio=tone)])
    return make


@pytest.fixture
def batch(tiny_model, arig_batch):
    return arig_batch(tiny_model.processor)


@pytest.fixture
def layer_runs():
    """`layer_runs(decoder, layer=0)` → a list that grows each time that decoder layer runs: twice a step
    when gradient checkpointing recomputes it in the backward pass. A pre-hook on its MLP, since the
    recomputation stops inside the MLP once the last tensor the backward needs is back."""
    def watch(decoder, layer: int = 0) -> list:
        calls = []
        decoder.layers[layer].mlp.register_forward_pre_hook(lambda *_: calls.append(1))
        return calls
    return watch

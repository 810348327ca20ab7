"""A procedural audio-visual world with exact ground truth: coloured shapes in a picture, one of which
sounds. `generate` writes raw annotations and media that `instruct_data/sources/synth.py` reads.

    python -m instruct_data synth --out data/synth --n 5000
"""

from instruct_data.synth.world import CLASSES, WorldConfig, generate

__all__ = ["CLASSES", "WorldConfig", "generate"]

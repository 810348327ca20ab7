"""Meerkat: an audio-visual LLM that grounds what it hears in what it sees."""

from meerkat.config import MeerkatConfig, get_preset
from meerkat.model import MeerkatModel, MeerkatOutput

__all__ = ["MeerkatConfig", "MeerkatModel", "MeerkatOutput", "get_preset"]

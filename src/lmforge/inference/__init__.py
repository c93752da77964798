"""Use a trained model: a generation engine sharing training's prompt code, and the chat command."""

from lmforge.inference.engine import ChatEngine, GenerationOptions, load_engine

__all__ = ["ChatEngine", "GenerationOptions", "load_engine"]

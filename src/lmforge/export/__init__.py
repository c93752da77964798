"""Export a trained adapter as a standalone model: merge, verify, write safetensors atomically."""

from lmforge.export.merge import export_merged

__all__ = ["export_merged"]

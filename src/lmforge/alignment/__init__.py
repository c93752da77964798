"""Offline preference optimisation (rm, dpo, kto, orpo, simpo): losses, pair batches, references, trainer."""

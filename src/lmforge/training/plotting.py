"""Loss curves as PNG files in the run directory (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _ema(values: list[float], weight: float = 0.9) -> list[float]:
    smoothed, last = [], values[0]
    for value in values:
        last = weight * last + (1 - weight) * value
        smoothed.append(last)
    return smoothed


def plot_losses(log_history: list[dict[str, Any]], output_dir: str | Path) -> list[Path]:
    """Write training_loss.png (raw + smoothed) and, when evaluated, eval_loss.png; return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for key, name in (("loss", "training_loss.png"), ("eval_loss", "eval_loss.png")):
        points = [(r["step"], r[key]) for r in log_history if key in r and "step" in r]
        if not points:
            continue
        steps, values = zip(*points, strict=True)
        fig, ax = plt.subplots(figsize=(7, 4))
        many = len(values) > 10
        ax.plot(steps, values, alpha=0.4 if many else 1.0, label=key, marker="" if len(values) > 1 else "o")
        if many:
            ax.plot(steps, _ema(list(values)), label=f"{key} (smoothed)")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(f"{key} of {Path(output_dir).name}")
        ax.legend()
        fig.tight_layout()
        path = Path(output_dir) / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written

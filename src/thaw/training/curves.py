"""Training curves as a PNG next to a checkpoint: losses and the validation metric per epoch.

Three panels: the ranking loss, the GAR losses (recommender/discriminator and generator, when
adversarial training ran) and the validation metric the early stopping watched, with the kept
epoch marked. Written with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

FILENAME = "training.png"


def _series(epochs: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for row in epochs:
        value = row.get(key)
        if value is not None:
            xs.append(int(row["epoch"]))
            ys.append(float(value))
    return xs, ys


def save_training_curves(history: Any, path: str | os.PathLike[str]) -> Path:
    """Plot `history` (a loop.History) to `path` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(history.epochs)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    xs, ys = _series(epochs, "loss")
    axes[0].plot(xs, ys, marker=".", color="tab:blue")
    axes[0].set_title("ranking loss")
    gan = False
    for key, label, colour in (("d_loss", "recommender (D)", "tab:red"), ("g_loss", "generator (G)", "tab:green")):
        xs, ys = _series(epochs, key)
        if xs:
            gan = True
            axes[1].plot(xs, ys, marker=".", label=label, color=colour)
    axes[1].set_title("GAR losses" if gan else "GAR losses (adversarial training off)")
    if gan:
        axes[1].legend()
    xs, ys = _series(epochs, "val")
    axes[2].plot(xs, ys, marker=".", color="tab:purple")
    if history.best_metric is not None:
        axes[2].axvline(history.best_epoch, color="grey", linestyle="--", label=f"kept: epoch {history.best_epoch}")
        axes[2].legend()
    axes[2].set_title(f"validation {history.metric}")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out

"""Training curves: one PNG with the loss parts and the validation metrics per epoch."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

__all__ = ["matplotlib_available", "plot_history"]


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (a core dependency; checked so a broken install still trains)."""
    return importlib.util.find_spec("matplotlib") is not None


def plot_history(history: Sequence[dict[str, float]], path: Path, title: str = "") -> Path:
    """Plot ``history.jsonl`` records: training loss parts (left) and validation item metrics (right).

    Args:
        history: one record per epoch as written by :func:`intentrec.train.loop.fit`.
        path: the PNG to write (atomically: a temporary file, then a rename).
        title: figure title.

    Returns:
        ``path``.

    Raises:
        ModuleNotFoundError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(h["epoch"]) for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({k for h in history for k in h if k.startswith("loss/")}):
        ax_loss.plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", ms=3, label=key[5:])
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss parts (L = item + λ Σ intent)")
    ax_loss.legend(fontsize=8)
    for key in ("val/ndcg@10", "val/recall@10", "val/mrr"):
        if any(key in h for h in history):
            xs = [e for e, h in zip(epochs, history, strict=True) if key in h]
            ax_val.plot(xs, [h[key] for h in history if key in h], marker="o", ms=3, label=key[4:])
    if ax_val.lines:
        ax_val.set(xlabel="epoch", ylabel="validation", title="validation (full-catalogue ranking)")
        ax_val.legend(fontsize=8)
    else:  # a refit trains on its validation targets
        ax_val.set(xlabel="epoch", title="no validation (a refit: trained on the validation targets)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path

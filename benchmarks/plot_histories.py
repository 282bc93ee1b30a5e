"""Overlay the validation curves of several runs (one line per run) in one PNG.

Usage::

    python benchmarks/plot_histories.py RUN [RUN ...] --out curves.png [--metric ndcg@10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metric", default="ndcg@10")
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in args.runs:
        path = Path(run)
        history = [json.loads(x) for x in (path / "history.jsonl").read_text(encoding="utf-8").splitlines() if x]
        label = json.loads((path / "config.json").read_text(encoding="utf-8"))["model"]
        name = label.get("architecture", "intentrec")
        name = name if name != "intentrec" else f"IntentRec {label['variant']}"
        key = f"val/{args.metric}"
        points = [(h["epoch"], h[key]) for h in history if key in h]
        ax.plot([e for e, _ in points], [v for _, v in points], marker="o", ms=2, label=f"{name} ({path.name})")
    ax.set(xlabel="epoch", ylabel=f"validation {args.metric}", title="validation, full-catalogue ranking")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

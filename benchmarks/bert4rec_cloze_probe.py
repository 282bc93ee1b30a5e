"""Does a trained BERT4Rec use the events *after* a masked one? A probe on its own training windows.

Usage::

    python benchmarks/bert4rec_cloze_probe.py RUN [--windows 64] [--columns 20]

RUN is a run directory of ``intentrec train`` with ``model.architecture=bert4rec``. For each of the last
``--columns`` token columns of ``--windows`` training windows, the token is replaced by [MASK] and the model ranks the
catalogue at that column twice: with the whole window visible (the Cloze task it was trained on) and with the events
after the mask hidden (the next-item task it is evaluated on). It prints HR@10 of the hidden item for both. A model
that has learned the Cloze task scores clearly higher with both sides visible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from intentrec import workflows
from intentrec.analysis_workflows import _label_widths
from intentrec.features.collate import CollateSettings, collate
from intentrec.features.dataset import TrainingWindows
from intentrec.model.layers import bidirectional_mask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--windows", type=int, default=64, help="training windows to probe")
    parser.add_argument("--columns", type=int, default=20, help="last token columns of each window to mask")
    args = parser.parse_args()

    art = workflows.load_run(args.run)
    if art.cfg.model.architecture != "bert4rec":
        raise SystemExit(f"{args.run} is a {art.cfg.model.architecture} run; the probe reads BERT4Rec runs")
    model, data = art.model.eval(), art.data
    windows = TrainingWindows(data, art.cfg.model.max_len, "none")
    batch = collate([windows[i] for i in range(min(args.windows, len(windows)))],
                    CollateSettings.build(art.cfg.model, data.spec, _label_widths(data)))
    tokens = torch.cat([batch.item_idx, batch.target_item[:, -1:]], dim=1)  # (B, n + 1) as in training
    valid = torch.cat([batch.valid, batch.target_item[:, -1:] > 0], dim=1)  # (B, n + 1)
    position = torch.cat([batch.position, batch.position[:, -1:] + 1], dim=1)  # (B, n + 1)
    n = tokens.shape[1]

    def hits(col: int, right_side: bool) -> torch.Tensor:
        masked = tokens.clone()
        masked[:, col] = model.mask_idx
        seen = valid.clone()
        if not right_side:
            seen[:, col + 1 :] = False  # (B, n + 1) the events after the mask are hidden
        with torch.no_grad():
            hidden = model.encoder(model.embedder.embed(masked, position, seen), bidirectional_mask(seen))
            scores = model.score_items(hidden[:, col])  # (B, I)
        real = valid[:, col] & (tokens[:, col] >= 2)  # (B,)
        rank = (scores > scores.gather(1, tokens[:, col : col + 1])).sum(dim=1)  # (B,) 0 = top
        return (rank[real] < 10).float()

    cols = range(max(1, n - 1 - args.columns), n - 1)
    both = torch.cat([hits(c, True) for c in cols])
    left = torch.cat([hits(c, False) for c in cols])
    print(f"{args.run}: {len(both):,} masked training tokens; HR@10 with both sides visible {both.mean():.3f}, "
          f"with only the events before it (next-item) {left.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

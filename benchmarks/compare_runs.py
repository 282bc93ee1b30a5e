"""Compare two trained runs on the same test targets: metrics side by side, paired t-test and bootstrap CI.

Usage::

    python benchmarks/compare_runs.py RUN_A RUN_B [--split test] [--metric ndcg@10]

Both runs must share the data config (same dataset, split and targets); each is evaluated once with its best
validation checkpoint. The per-target values are paired by (user, position).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from intentrec import workflows
from intentrec.evaluate.compare import bootstrap_ci, paired_t_test, relative_improvement


def _per_target(run: str, split: str) -> tuple[str, dict[str, float], dict[str, np.ndarray], np.ndarray, str]:
    art = workflows.load_run(run)
    targets = art.data.split.test_targets if split == "test" else art.data.split.val_targets
    report = workflows.evaluate_split(art, split)
    return art.cfg.model.label, report.item, report.per_target, targets, art.data.fingerprint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--metric", default="ndcg@10", choices=["ndcg@10", "hr@10", "mrr"])
    args = parser.parse_args()

    name_a, item_a, per_a, targets_a, fp_a = _per_target(args.run_a, args.split)
    name_b, item_b, per_b, targets_b, fp_b = _per_target(args.run_b, args.split)
    if fp_a != fp_b or not np.array_equal(targets_a, targets_b):
        print("the two runs were not evaluated on the same data and targets: no paired comparison", file=sys.stderr)
        return 2
    a, b = per_a[args.metric], per_b[args.metric]
    t, p = paired_t_test(a, b)
    diff, lo, hi = bootstrap_ci(a, b, n_resamples=2000, seed=0)
    keys = ["hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr"]
    print(f"{args.split} split, {len(a):,} targets, full-catalogue ranking")
    print(f"{'metric':<10}{name_a:>16}{name_b:>16}{'relative':>12}")
    for k in keys:
        rel = relative_improvement(item_a[k], item_b[k])
        print(f"{k:<10}{item_a[k]:>16.4f}{item_b[k]:>16.4f}{(f'{100 * rel:+.2f}%' if rel is not None else '-'):>12}")
    print(json.dumps({"metric": args.metric, "a": name_a, "b": name_b, "mean_difference_a_minus_b": diff,
                      "bootstrap_95ci": [lo, hi], "paired_t": t, "p_value": p}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Compare two models trained with several seeds on the same test targets (as the benchmark report does).

Usage::

    python benchmarks/compare_seeds.py --a RUN_A0 RUN_A1 RUN_A2 --b RUN_B0 RUN_B1 RUN_B2 [--metric ndcg@10]

Reads each run's ``per_target_test.npz`` (written by ``intentrec train`` and ``intentrec refit``), checks that every
run scored the same targets (user, position), prints each model's mean ± std over its runs, then averages each
model's per-target values over its runs and reports the paired t-test and a bootstrap 95% CI of the difference
(2,000 resamples, seed 0): the statistic of ``intentrec benchmark``'s significance table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from intentrec.evaluate.compare import bootstrap_ci, mean_std, paired_t_test, relative_improvement


def _load(run: str, metric: str) -> tuple[np.ndarray, np.ndarray, str]:
    path = Path(run) / "per_target_test.npz"
    if not path.is_file():
        raise SystemExit(f"{run}: no per_target_test.npz (not a finished run of `intentrec train` or `refit`)")
    with np.load(path, allow_pickle=False) as z:
        if metric not in z.files:
            raise SystemExit(f"{run}: no per-target {metric!r} (it has {', '.join(sorted(z.files))})")
        keys = np.char.add(np.char.add(z["user_id"].astype(str), "@"), z["position"].astype(str))  # (T,)
        values = z[metric].astype(np.float64)  # (T,)
    model = json.loads((Path(run) / "metrics.json").read_text(encoding="utf-8")).get("model", run)
    return keys, values, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", required=True, help="runs of model A (one per seed)")
    parser.add_argument("--b", nargs="+", required=True, help="runs of model B (one per seed)")
    parser.add_argument("--metric", default="ndcg@10")
    args = parser.parse_args()
    keys_ref: np.ndarray | None = None
    summary: dict[str, object] = {"metric": args.metric}
    averaged = []
    for side, runs in (("a", args.a), ("b", args.b)):
        per_run, names = [], set()
        for run in runs:
            keys, values, model = _load(run, args.metric)
            if keys_ref is None:
                keys_ref = keys
            elif not np.array_equal(keys, keys_ref):
                raise SystemExit(f"{run} scored other test targets than {args.a[0]}: compare runs of one split")
            per_run.append(values)
            names.add(model)
        mean, std = mean_std(float(v.mean()) for v in per_run)
        summary[side] = {"model": " / ".join(sorted(names)), "runs": len(runs), "mean": mean, "std": std}
        averaged.append(np.mean(np.stack(per_run), axis=0))  # (T,) seed-averaged per target
    x, y = averaged
    t, p = paired_t_test(x, y)
    diff, lo, hi = bootstrap_ci(x, y, n_resamples=2000, seed=0)
    summary.update({"n_targets": int(x.size), "relative_a_vs_b": relative_improvement(float(x.mean()), float(y.mean())),
                    "mean_difference_a_minus_b": diff, "bootstrap_95ci": [lo, hi], "paired_t": t, "p_value": p})
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

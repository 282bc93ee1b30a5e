"""The benchmark report: PAPER Tables 1-3 per dataset, mean ± std over seeds, paired significance, plots.

Everything is computed from ``results.json`` and the runs' ``per_target_test.npz`` files, so a report can be
rebuilt at any time (``intentrec benchmark --report-only``). Rules, stated in the report itself:

* every number is on the test split, full-catalogue ranking (the protocol line of each dataset says which);
* the *best baseline* is chosen on **validation** (mean over seeds of the suite metric), never on test;
* significance: paired over the same test targets, per-target values averaged over the seeds both models ran;
  two-sided paired t-test and a 95% percentile bootstrap CI of the mean difference (2,000 resamples);
* refits (``refit: true``) are a variant protocol: a section of their own per dataset, never in Tables 1-3.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from intentrec.evaluate.compare import bootstrap_ci, mean_std, paired_t_test, relative_improvement
from intentrec.train.checkpoint import atomic_write_text

__all__ = ["REPORT_FILE", "significance", "write_report"]

REPORT_FILE = "report.md"
ALPHA = 0.01


def _primary_intent_metric(metrics: dict[str, float]) -> str:
    if "accuracy" in metrics:
        return "accuracy"
    return next(k for k in metrics if k.startswith("recall@"))


class _Model:
    """The finished runs of one model on one dataset."""

    def __init__(self, name: str, runs: list[dict[str, Any]]) -> None:
        self.name = name
        self.runs = sorted(runs, key=lambda r: r["seed"])
        self.tables = set(self.runs[0]["tables"])
        self.single_head = self.runs[0].get("single_head")
        self.heuristic = bool(self.runs[0].get("heuristic"))

    def values(self, split: str, column: str) -> list[float]:
        """One value per seed of ``column`` (``item:<metric>`` or ``intent:<name>``) on ``split``."""
        kind, key = column.split(":", 1)
        out = []
        for r in self.runs:
            block = r[split]
            if kind == "item":
                v = block["item"].get(key)
            else:
                m = block["intents"].get(key)
                v = m.get(_primary_intent_metric(m)) if m else None
            if v is not None:
                out.append(float(v))
        return out

    def mean(self, split: str, column: str) -> float | None:
        vals = self.values(split, column)
        return mean_std(vals)[0] if vals else None

    def cell(self, column: str, reference: float | None) -> str:
        vals = self.values("test", column)
        if not vals:
            return "N/A"
        mean, std = mean_std(vals)
        text = f"{mean:.4f}" + (f" ± {std:.4f}" if len(vals) > 1 else "")
        if self.heuristic and column.startswith("intent:"):
            text += "†"  # an untrained baseline predicts the majority training label
        rel = relative_improvement(mean, reference)
        return text + (f" ({100 * rel:+.2f}%)" if rel is not None else "")

    @property
    def wall_seconds(self) -> float:
        return float(sum(r.get("wall_seconds", 0.0) for r in self.runs))


def _per_target(root: Path, run: dict[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(root / run["per_target"], allow_pickle=False) as z:
        keys = np.char.add(np.char.add(z["user_id"].astype(str), "@"), z["position"].astype(str))  # (T,)
        return keys, z[metric].astype(np.float64)


def significance(root: Path, a: _Model, b: _Model, metric: str) -> dict[str, Any] | None:
    """Paired comparison of ``a`` against ``b`` on the test targets (seed-averaged per target).

    Returns:
        ``{a, b, seeds, n_targets, mean_a, mean_b, relative, t, p, diff, ci_low, ci_high}`` or None when the runs
        were not evaluated on the same targets.
    """
    seeds = sorted({r["seed"] for r in a.runs} & {r["seed"] for r in b.runs})
    runs_a = [r for r in a.runs if r["seed"] in seeds] or a.runs
    runs_b = [r for r in b.runs if r["seed"] in seeds] or b.runs  # heuristics: one deterministic run
    arrays = []
    keys_ref: np.ndarray | None = None
    for runs in (runs_a, runs_b):
        stack = []
        for r in runs:
            keys, values = _per_target(root, r, metric)
            if keys_ref is None:
                keys_ref = keys
            elif not np.array_equal(keys, keys_ref):
                return None
            stack.append(values)
        arrays.append(np.mean(np.stack(stack), axis=0))  # (T,)
    x, y = arrays
    t, p = paired_t_test(x, y)
    diff, lo, hi = bootstrap_ci(x, y, n_resamples=2000, seed=0)
    return {"a": a.name, "b": b.name, "seeds": seeds, "n_targets": int(x.size), "mean_a": float(x.mean()),
            "mean_b": float(y.mean()), "relative": relative_improvement(float(x.mean()), float(y.mean())),
            "t": t, "p": p, "diff": diff, "ci_low": lo, "ci_high": hi}


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _fmt_p(p: float) -> str:
    if p == 0.0:
        return "< 1e-300"  # below double precision
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def _refitted(model: _Model) -> _Model | None:
    """The refits of a model's runs (test block and per-target file of the refit), or None when it has none."""
    runs = [{**r, "test": r["refit"]["test"], "per_target": r["refit"]["per_target"],
             "wall_seconds": r["refit"].get("wall_seconds", 0.0), "epochs_run": r["refit"].get("epochs_run", 0)}
            for r in model.runs if (r.get("refit") or {}).get("status") == "done"]
    return _Model(model.name, runs) if runs else None


def _verdict(s: dict[str, Any]) -> str:
    return ("beats" if s["diff"] > 0 and s["p"] < ALPHA else
            "is below" if s["diff"] < 0 and s["p"] < ALPHA else "is not significantly different from")


def _comparison_row(star: str, other: str, s: dict[str, Any]) -> list[str]:
    """One row of a significance table: comparison, means (relative), t, p, bootstrap CI, verdict."""
    rel = f"{100 * s['relative']:+.2f}%" if s["relative"] is not None else "-"
    return [f"{star} vs {other}", f"{s['mean_a']:.4f} vs {s['mean_b']:.4f} ({rel})", f"{s['t']:.2f}", _fmt_p(s["p"]),
            f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}]", f"{star} {_verdict(s)} {other} (α = {ALPHA})"]


def _summary_row(dataset: str, other: str, s: dict[str, Any]) -> str:
    """One row of the report's summary table."""
    rel = f"{100 * s['relative']:+.2f}%" if s["relative"] is not None else "-"
    return (f"| {dataset} | {other} | {s['mean_a']:.4f} | {s['mean_b']:.4f} | {rel} | {_fmt_p(s['p'])} | "
            f"{_verdict(s)} |")


_SIGNIFICANCE_HEADER = ["means", "t", "p", "95% bootstrap CI of Δ", "verdict"]


def _refit_section(
    root: Path, name: str, models: list[_Model], suite: dict[str, Any], best: _Model | None, summary: list[str]
) -> list[str]:
    """The refits of a dataset (``refit: true``): each model on both protocols, and the paired test of the refits
    of IntentRec and of the best baseline (still chosen on the source runs' validation)."""
    metric = suite["metric"]
    refits = {m.name: r for m in models if (r := _refitted(m)) is not None}
    if not refits:
        return []
    lines = ["### Refit on training + validation events (a variant protocol)", "",
             "Each run retrained with its config and seed on the training events **plus the validation period**, for "
             "the epochs its validation chose, and scored on the same test targets (`intentrec refit`). This is the "
             "model one would deploy, but **not** the published protocol, which never trains on the validation "
             "period: compare refits with refits only.", ""]
    rows = []
    for m in models:
        r = refits.get(m.name)
        if r is None:
            continue
        source = m.mean("test", f"item:{metric}")
        rows.append([m.name, m.cell(f"item:{metric}", None), r.cell(f"item:{metric}", source),
                     ", ".join(str(x["refit"].get("epochs", "-")) for x in m.runs if x.get("refit"))])
    lines.extend(_md_table(["Model", f"{metric} (validation held out, as in Table 1)", f"{metric} refit (change)", "refit epochs"],
                           rows))
    lines.append("")
    star, other = refits.get(suite["intentrec"]), refits.get(best.name) if best is not None else None
    if star is not None and other is None and best is not None:
        lines += [f"The best baseline on validation, {best.name}, has no refit: no paired test of the refits.", ""]
    if star is not None and other is not None:
        s = significance(root, star, other, metric)
        if s is None:
            lines += [f"{star.name} vs {other.name} (refits): targets differ, no paired test.", ""]
        else:
            lines.extend(_md_table([f"comparison of the refits ({metric}, test)", *_SIGNIFICANCE_HEADER],
                                   [_comparison_row(star.name, other.name, s)]))
            lines.append("")
            summary.append(_summary_row(f"{name} (refit)", other.name, s))
    return lines


def _dataset_section(
    root: Path, name: str, models: list[_Model], suite: dict[str, Any], info: dict[str, Any],
    plots: list[str], summary: list[str],
) -> list[str]:
    metric = suite["metric"]
    by_name = {m.name: m for m in models}
    intents: list[str] = []
    for m in models:
        for r in m.runs:
            intents += [k for k in r["test"]["intents"] if k not in intents]
    item_cols = [f"item:{metric}"] + [f"item:{k}" for k in ("hr@10", "mrr") if k != metric]
    intent_cols = [f"intent:{i}" for i in intents]
    first = models[0].runs[0]
    proto = first["protocol"]
    lines = [f"## {name}", ""]
    lines.append(f"- Data: {info.get('description', proto['description'])}")
    lines.append(f"- Protocol: {proto['protocol']} split; test targets: {first['test']['n_targets']:,}; ranking: "
                 f"{proto['ranking']}; seen items excluded: {proto['exclude_seen']}")
    excluded = proto.get("excluded_targets") or {}
    lines.append("- Excluded targets (counted, not ranked): "
                 + (", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in excluded.items()) or "none"))
    intent_names = []
    for i in intents:
        m = next(r["test"]["intents"][i] for mm in models for r in mm.runs if i in r["test"]["intents"])
        intent_names.append(f"{i} ({_primary_intent_metric(m)})")
    if intent_names:
        lines.append(f"- Intent columns: {', '.join(intent_names)}; N/A = the model has no head for it")
    lines.append("")

    header = ["Model", *(c.split(":", 1)[1] for c in item_cols), *intents]

    def table(number: int, reference: str | None, title: str) -> None:
        rows_models = [m for m in models if number in m.tables]
        if not rows_models:
            return
        ref = by_name.get(reference) if reference else None
        lines.append(f"### Table {number}: {title}")
        lines.append("")
        if reference and ref is None:
            lines.append(f"(reference row {reference!r} did not run on this dataset: absolute values only)")
            lines.append("")
        rows = []
        for m in rows_models:
            cells = [m.name + (" *(reference)*" if m is ref else "")]
            for col in item_cols + intent_cols:
                if number == 3 and col.startswith("intent:"):
                    intent = col.split(":", 1)[1]
                    single = next((x for x in rows_models if x.single_head == intent), None)
                    base = single.mean("test", col) if single is not None else None
                else:
                    base = ref.mean("test", col) if ref is not None else None
                cells.append(m.cell(col, base))
            rows.append(cells)
        lines.extend(_md_table(header, rows))
        if any(m.heuristic for m in rows_models) and intent_cols:
            lines.append("")
            lines.append("† untrained baseline: its intent prediction is always the majority training label.")
        lines.append("")

    ref = suite["reference"]
    table(1, ref["table1"], f"next-item and next-intent prediction, relative to {ref['table1']}")
    table(2, ref["table2"], f"architecture ablation, relative to {ref['table2']}")
    table(3, ref["table3"], f"intent-head ablation: item relative to {ref['table3']}, each intent relative to its "
                            "single-head variant")

    # significance: IntentRec vs the best baseline chosen on validation
    star = by_name.get(suite["intentrec"])
    baselines = [m for m in models if 1 in m.tables and m.name != suite["intentrec"]]
    best = max(baselines, key=lambda m: m.mean("validation", f"item:{metric}") or -math.inf) if baselines else None
    if star is not None and best is not None:
        lines.append(f"### Significance: {star.name} vs the best baseline")
        lines.append("")
        lines.append(f"Best baseline on **validation** {metric}: **{best.name}** "
                     f"({best.mean('validation', f'item:{metric}'):.4f}).")
        lines.append("")
        compare = [best] + [by_name[r] for r in (ref["table1"],) if r in by_name and by_name[r] is not best
                            and by_name[r] is not star]
        rows = []
        for other in compare:
            s = significance(root, star, other, metric)
            if s is None:
                rows.append([f"{star.name} vs {other.name}", "targets differ: no paired test", "", "", "", ""])
                continue
            rows.append(_comparison_row(star.name, other.name, s))
            if other is best:
                summary.append(_summary_row(name, best.name, s))
        lines.extend(_md_table([f"comparison ({metric}, test)", *_SIGNIFICANCE_HEADER], rows))
        lines.append("")

    lines += _refit_section(root, name, models, suite, best, summary)

    ceilings = info.get("ceilings")
    if ceilings:
        lines.append("### Intent accuracy against the simulator's ceiling")
        lines.append("")
        lines.append("The ceiling is the accuracy of the generator's own oracle, which knows each session's latent "
                     "intent (the best any model can do on these targets).")
        lines.append("")
        best_model = {i: max((m for m in models if m.mean("test", f"intent:{i}") is not None),
                             key=lambda m: m.mean("test", f"intent:{i}") or 0.0, default=None) for i in intents}
        rows = []
        for i, ceiling in ceilings.items():
            if i not in intents:
                continue
            pop = first["popularity_test"]["intents"].get(i, {})
            star_v = star.mean("test", f"intent:{i}") if star is not None else None
            bm = best_model.get(i)
            rows.append([i, f"{ceiling:.4f}", f"{pop.get('accuracy', float('nan')):.4f}",
                         f"{star_v:.4f}" if star_v is not None else "N/A",
                         f"{bm.name} {bm.mean('test', f'intent:{i}'):.4f}" if bm is not None else "N/A"])
        lines.extend(_md_table(["intent", "oracle ceiling", "majority training label", suite["intentrec"], "best model"],
                               rows))
        lines.append("")

    lines.append("### Cost")
    lines.append("")
    rows = [[m.name, str(len(m.runs)), f"{m.wall_seconds / 60:.1f}",
             ", ".join(str(r.get("epochs_run", "-")) for r in m.runs),
             ", ".join(str(r.get("stop_reason", "") or "-") for r in m.runs)] for m in models]
    header = ["model", "runs", "wall minutes (all seeds)", "epochs", "stopped by"]
    refits = [_refitted(m) for m in models]
    if any(refits):
        header.append("refit wall minutes")
        for row, r in zip(rows, refits, strict=True):
            row.append(f"{r.wall_seconds / 60:.1f}" if r is not None else "-")
    lines.extend(_md_table(header, rows))
    lines.append("")
    lines += [f"![{name}]({p})" for p in plots]
    lines.append("")
    return lines


def _plot(root: Path, name: str, models: list[_Model], metric: str, star: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    column = f"item:{metric}"
    rows = [(m.name, *mean_std(m.values("test", column))) for m in models if m.values("test", column)]
    if not rows:
        return []
    rows.sort(key=lambda r: r[1])
    refits = {m.name: mean_std(r.values("test", column)) for m in models if (r := _refitted(m)) is not None}
    fig, ax = plt.subplots(figsize=(7.5, (0.55 if refits else 0.38) * len(rows) + 1.4))
    colors = ["#d62728" if n == star else "#1f77b4" for n, _, _ in rows]
    ys = np.arange(len(rows), dtype=float)
    height = 0.4 if refits else 0.8
    shift = height / 2 if refits else 0.0
    ax.barh(ys - shift, [r[1] for r in rows], height=height, xerr=[r[2] for r in rows], color=colors, capsize=3,
            label="validation held out (Table 1)" if refits else None)
    for y, (_, mean, _) in zip(ys, rows, strict=True):
        ax.text(mean, y - shift, f" {mean:.4f}", va="center", fontsize=8)
    if refits:
        pairs = [(y, refits[n]) for y, (n, _, _) in zip(ys, rows, strict=True) if n in refits]
        ax.barh([y + shift for y, _ in pairs], [v[0] for _, v in pairs], height=height,
                xerr=[v[1] for _, v in pairs], color="#bbbbbb", hatch="//", edgecolor="#555555", capsize=3,
                label="refit on training + validation (variant)")
        for y, (mean, _) in pairs:
            ax.text(mean, y + shift, f" {mean:.4f}", va="center", fontsize=8)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.6 / (len(rows) + 2)), ncol=2, fontsize=8,
                  frameon=False)  # under the axis label: never over a bar
    ax.set_yticks(ys, [r[0] for r in rows])
    ax.set_xlabel(f"test {metric} (full-catalogue ranking; mean ± std over seeds)")
    ax.set_title(f"{name}: next-item prediction")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    rel = Path("plots") / f"{''.join(c if c.isalnum() else '_' for c in name)}_{metric.replace('@', '')}.png"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(root / rel, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [rel.as_posix()]


def write_report(doc: dict[str, Any], root: str | Path) -> Path:
    """Write ``report.md`` (and ``plots/``) into ``root`` from a results document.

    Args:
        doc: the ``results.json`` document of :func:`intentrec.benchmark.runner.run_suite`.
        root: the suite output folder (per-target files are read relative to it).

    Returns:
        The report's path.
    """
    root = Path(root)
    suite = doc["suite"]
    done = [r for r in doc["runs"].values() if r.get("status") == "done"]
    failed = [r for r in doc["runs"].values() if r.get("status") == "failed"]
    order = {m["name"]: i for i, m in enumerate(suite["models"])}
    lines = [f"# Benchmark report: suite `{suite['name']}`", ""]
    if suite.get("description"):
        lines += [suite["description"].strip(), ""]
    machine = doc.get("machine", {})
    lines.append(f"Machine: {machine.get('processor', '?')}, {machine.get('cpu_count', '?')} CPUs"
                 f"{', GPU ' + machine['gpu'] if machine.get('gpu') else ', no GPU'}; Python {machine.get('python')}, "
                 f"torch {machine.get('torch')}. Started {doc.get('started')}, updated {doc.get('updated')}.")
    if doc.get("overrides"):
        lines.append(f"Overrides for every run (`--set`): {', '.join(f'`{o}`' for o in doc['overrides'])}.")
    total = sum(r.get("wall_seconds", 0.0) for r in done)
    lines.append(f"Runs: {len(done)} finished ({total / 60:.1f} min of run wall time), {len(failed)} failed.")
    lines.append("")
    lines.append("All numbers: **test split**, full-catalogue ranking, mean ± std over seeds (heuristic baselines are "
                 "deterministic: one run). Relative % as in the paper: (model − reference) / reference. The best "
                 "baseline is chosen on the **validation** split.")
    lines.append("")
    summary: list[str] = []
    body: list[str] = []
    for ds in [d["name"] for d in suite["datasets"]]:
        runs = [r for r in done if r["dataset"] == ds]
        if not runs:
            continue
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in runs:
            grouped[r["model"]].append(r)

        def rank(name: str) -> tuple[int, str]:
            base = name.split(" only-")[0]
            return order.get(name, order.get(base, len(order))), name

        models = [_Model(n, grouped[n]) for n in sorted(grouped, key=rank)]
        plots = _plot(root, ds, models, suite["metric"], suite["intentrec"])
        body += _dataset_section(root, ds, models, suite, doc.get("datasets", {}).get(ds, {}), plots, summary)
    if summary:
        lines.append(f"## Summary: {suite['intentrec']} vs the best baseline ({suite['metric']}, test)")
        lines.append("")
        lines.append("| dataset | best baseline (validation) | IntentRec | baseline | relative | p (paired t) | verdict |")
        lines.append("|---|---|---|---|---|---|---|")
        lines += summary
        lines.append("")
    lines += body
    if failed:
        lines.append("## Failed runs")
        lines.append("")
        lines += [f"- `{r['key']}`: {r.get('error', '?')}" for r in failed]
        lines.append("")
    path = root / REPORT_FILE
    atomic_write_text(path, "\n".join(lines))
    return path

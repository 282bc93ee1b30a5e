"""Item metrics of finished runs on the streaming simulator, split by each test target's latent session intent.

Usage::

    python benchmarks/sim_by_intent.py RUN [RUN ...] [--metric ndcg@10] [--plot FILE.png] [--by-session-start]

Each RUN is a run directory of ``intentrec train`` or ``intentrec benchmark`` on a simulator config (heuristic
baselines included: only ``config.json`` and ``per_target_test.npz`` are read). The simulator records the latent
intent of every session (``continue`` a show in progress, ``discover``, ``genre_mood``, ``new_release``); this
script regenerates the log from the run's preset (the generator is seeded), checks that it lines up event by event
with the prepared data, and averages the per-target metric within each intent. The last row is the simulator's
item-ranking ceiling on the same targets: every item ranked by the generator's own probability, knowing the latent
state (``streaming_sim.item_ceiling``). ``--by-session-start`` splits each intent into the first event of a session
(``/start``) and the events inside one (``/inside``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from intentrec.config import ExperimentConfig
from intentrec.data import prepare
from intentrec.datasets.streaming_sim import TRUE_INTENTS, SimConfig, rank_metrics, simulate


def _config(run: Path) -> ExperimentConfig:
    return ExperimentConfig.model_validate(json.loads((run / "config.json").read_text(encoding="utf-8")))


def _intents_by_user(
    cfg: ExperimentConfig, by_session_start: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """user id -> (n_u,) latent intent (with ``/start`` or ``/inside`` appended when ``by_session_start``), and
    (n_u,) oracle item rank, of each of the user's events, in the prepared data's order."""
    if cfg.data.source.adapter != "streaming_sim" or cfg.data.source.path is not None:
        raise SystemExit("sim_by_intent.py reads runs on a simulator preset (data.source.adapter streaming_sim, "
                         "no data.source.path)")
    events = simulate(SimConfig.from_name(cfg.data.source.name or "small")).events
    events = events.sort(["user_id", "timestamp"], maintain_order=True)
    data = prepare(cfg.data, progress=False)
    by_user: dict[str, np.ndarray] = {}
    rank_by_user: dict[str, np.ndarray] = {}
    for user, frame in events.group_by("user_id", maintain_order=True):
        intent = frame["true_intent"].to_numpy().astype(object)
        if by_session_start:
            session = frame["session_id"].to_numpy()
            start = np.concatenate([[True], session[1:] != session[:-1]])  # (n_u,) first event of its session
            intent = np.where(start, intent + "/start", intent + "/inside")
        by_user[str(user[0])] = intent
        rank_by_user[str(user[0])] = frame["oracle_item_rank"].to_numpy()
    for u, user in enumerate(data.user_ids):
        rows = data.user_slice(u)
        if user not in by_user or len(by_user[user]) != rows.stop - rows.start:
            raise SystemExit(f"the regenerated log does not line up with the prepared data at user {user!r} "
                             "(cleaning removed events?): cannot map targets to intents")
    return by_user, rank_by_user


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metric", default="ndcg@10", choices=["ndcg@10", "hr@10", "mrr"])
    parser.add_argument("--plot", type=Path, default=None, help="write a grouped bar chart here")
    parser.add_argument("--by-session-start", action="store_true",
                        help="split each intent into a session's first event and the events inside it")
    args = parser.parse_args()

    by_user, rank_by_user = _intents_by_user(_config(args.runs[0]), args.by_session_start)
    groups = [f"{n}/{part}" for n in TRUE_INTENTS for part in ("start", "inside")] if args.by_session_start \
        else list(TRUE_INTENTS)
    rows: list[tuple[str, dict[str, float], float]] = []
    shares: dict[str, float] = {}
    for run in args.runs:
        cfg = _config(run)
        per = np.load(run / "per_target_test.npz", allow_pickle=False)
        intent = np.asarray([by_user[str(u)][int(p)] for u, p in zip(per["user_id"], per["position"], strict=True)])
        values = per[args.metric]
        means = {name: float(values[intent == name].mean()) for name in groups if (intent == name).any()}
        shares = {name: float((intent == name).mean()) for name in groups}
        boosts = [b for b, on in (("repeat", cfg.model.repeat_boost),
                                  (",".join(cfg.model.repeat_boost_attributes), bool(cfg.model.repeat_boost_attributes)))
                  if on]
        label = cfg.model.label + (f" + boost ({' + '.join(boosts)})" if boosts else "") + \
            (" + request gap" if cfg.model.request_gap else "")
        rows.append((label, means, float(values.mean())))
    # the ceiling on the last run's targets (the runs of one suite share them)
    rank = np.asarray([rank_by_user[str(u)][int(p)] for u, p in zip(per["user_id"], per["position"], strict=True)])
    ceiling = {name: rank_metrics(rank[intent == name])[args.metric] for name in groups if (intent == name).any()}
    rows.append(("Oracle ranking (knows the latent state)", ceiling, rank_metrics(rank)[args.metric]))

    names = [n for n in groups if shares.get(n, 0) > 0]
    print(f"test {args.metric} by the target's latent session intent ({len(per['user_id']):,} targets of the "
          f"last run; full-catalogue ranking)")
    print("| model | " + " | ".join(f"{n} ({shares[n]:.0%})" for n in names) + " | all |")
    print("|---|" + "---:|" * (len(names) + 1))
    for label, means, overall in rows:
        print(f"| {label} | " + " | ".join(f"{means.get(n, float('nan')):.4f}" for n in names) + f" | {overall:.4f} |")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(names), 3.6))
        width = 0.8 / len(rows)
        for k, (label, means, _) in enumerate(rows):
            ax.bar(np.arange(len(names)) + k * width, [means.get(n, 0.0) for n in names], width, label=label)
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, [f"{n}\n({shares[n]:.0%} of targets)" for n in names])
        ax.set_ylabel(f"test {args.metric}")
        ax.set_title("streaming simulator: item ranking by latent session intent")
        ax.legend(fontsize=7)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

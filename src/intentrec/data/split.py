"""Evaluation protocols of EVALUATION.md: ``leave-one-out``, ``temporal`` and ``user``.

Splitting happens in two steps because the item vocabulary depends on the training events:

1. :func:`plan_split` decides ``train_len`` and the candidate targets from the event order and times only;
2. after the item vocabulary is fitted on training events, :func:`finalize_split` drops targets whose item is
   unknown (``cold_item``) and writes the description.

Every protocol excludes targets at position 0 (nothing to predict from; counted as ``no_history``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from intentrec.config import SplitConfig
from intentrec.errors import ConfigError, DataError
from intentrec.structs import Split
from intentrec.vocab import UNK_IDX

__all__ = [
    "SplitPlan",
    "check_protocol",
    "check_split",
    "cutoff_quantiles",
    "describe_split",
    "drop_cold_targets",
    "event_positions",
    "finalize_split",
    "plan_split",
    "refit_split",
    "training_mask",
    "user_roles",
]


@dataclass(frozen=True)
class SplitPlan:
    """The split before cold-item exclusion."""

    protocol: str
    train_len: np.ndarray
    """(U,) int64 training prefix length per user."""
    val: np.ndarray
    """(V, 2) int64 candidate validation targets (user_row, position)."""
    test: np.ndarray
    """(T, 2) int64 candidate test targets."""
    excluded: dict[str, int] = field(default_factory=dict)
    """Targets excluded so far, by reason."""
    targets: str = "next"
    """The targets mode used (for the description)."""
    cutoffs: dict[str, float] = field(default_factory=dict)
    """Temporal: ``t_val`` and ``t_test`` in seconds."""
    n_val_users: int = 0
    n_test_users: int = 0


def event_positions(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-event user row and position within the user.

    Args:
        offsets: (U + 1,) CSR offsets.

    Returns:
        ``(user, pos)``, each (N,) int64.
    """
    lengths = np.diff(offsets)  # (U,)
    user = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)  # (N,)
    pos = np.arange(int(offsets[-1]), dtype=np.int64) - offsets[user]  # (N,)
    return user, pos


def training_mask(offsets: np.ndarray, train_len: np.ndarray) -> np.ndarray:
    """(N,) bool: True at training events (position < ``train_len`` of the user)."""
    user, pos = event_positions(offsets)
    return pos < train_len[user]  # (N,)


def _pairs(user: np.ndarray, pos: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.stack([user[mask], pos[mask]], axis=1).astype(np.int64).reshape(-1, 2)  # (K, 2)


def _drop_no_history(pairs: np.ndarray, excluded: dict[str, int]) -> np.ndarray:
    keep = pairs[:, 1] >= 1  # (K,)
    excluded["no_history"] = excluded.get("no_history", 0) + int((~keep).sum())
    return pairs[keep]


def check_protocol(cfg: SplitConfig, *, timed: bool) -> None:
    """Check that the protocol can be used with this data and ``targets`` value.

    Raises:
        ConfigError: temporal on untimed data, or temporal with ``targets: last``.
    """
    if cfg.protocol != "temporal":
        return
    if not timed:
        raise ConfigError(
            "data.split.protocol 'temporal' needs real timestamps, but this data is untimed (only the event "
            "order is known); use protocol 'leave-one-out' or 'user'"
        )
    if cfg.targets == "last":
        raise ConfigError(
            "data.split.targets 'last' is for the 'user' protocol; the temporal protocol takes 'next' (each "
            "user's first event in the window) or 'all'"
        )


def cutoff_quantiles(cfg: SplitConfig) -> dict[str, float]:
    """The event-time quantiles of the temporal cut-offs: ``{"t_val": 1 - val - test, "t_test": 1 - test}``."""
    return {"t_val": 1.0 - cfg.val_fraction - cfg.test_fraction, "t_test": 1.0 - cfg.test_fraction}


def user_roles(n_users: int, cfg: SplitConfig) -> np.ndarray:
    """User protocol: (U,) int8 role per user row, 0 = training, 1 = validation, 2 = test (seeded permutation)."""
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n_users)  # (U,)
    n_test = round(cfg.test_fraction * n_users)
    n_val = round(cfg.val_fraction * n_users)
    role = np.zeros(n_users, dtype=np.int8)  # 0 train, 1 val, 2 test
    role[perm[:n_test]] = 2
    role[perm[n_test:n_test + n_val]] = 1
    return role


def plan_split(
    offsets: np.ndarray,
    timestamps: np.ndarray,
    cfg: SplitConfig,
    *,
    timed: bool,
    cutoffs: dict[str, float] | None = None,
    roles: np.ndarray | None = None,
) -> SplitPlan:
    """Choose training prefixes and candidate evaluation targets.

    The users given may be a contiguous slice of all users (data prepared in chunks): pass the global temporal
    ``cutoffs`` or user-protocol ``roles`` of those users, and the plan's user rows are local to the slice.

    Args:
        offsets: (U + 1,) CSR offsets of users' events (time-ordered within each user).
        timestamps: (N,) float64 event times (order index when untimed).
        cfg: the ``data.split`` section.
        timed: whether timestamps are real times.
        cutoffs: temporal: ``t_val`` and ``t_test`` (default: the quantiles of ``timestamps``).
        roles: user protocol: (U,) int8 roles of these users (default: :func:`user_roles`).

    Returns:
        The plan (targets at position 0 already excluded and counted).

    Raises:
        ConfigError: the protocol cannot be used with this data or ``targets`` value.
    """
    check_protocol(cfg, timed=timed)
    lengths = np.diff(offsets).astype(np.int64)  # (U,)
    n_users = len(lengths)
    user, pos = event_positions(offsets)  # (N,), (N,)
    excluded: dict[str, int] = {"no_history": 0}
    if cfg.protocol == "leave-one-out":
        ok = lengths >= 3  # (U,)
        train_len = np.where(ok, lengths - 2, lengths).astype(np.int64)  # (U,)
        users = np.nonzero(ok)[0].astype(np.int64)
        val = np.stack([users, lengths[users] - 2], axis=1).reshape(-1, 2)  # (V, 2)
        test = np.stack([users, lengths[users] - 1], axis=1).reshape(-1, 2)  # (T, 2)
        return SplitPlan("leave-one-out", train_len, val, test, excluded, targets="last",
                         n_val_users=len(users), n_test_users=len(users))
    if cfg.protocol == "temporal":
        if cutoffs is None:
            q = cutoff_quantiles(cfg)
            cutoffs = {name: float(np.quantile(timestamps, value)) for name, value in q.items()}
        t_val, t_test = cutoffs["t_val"], cutoffs["t_test"]
        before = timestamps < t_val  # (N,)
        train_len = np.bincount(user, weights=before, minlength=n_users).astype(np.int64)  # (U,)
        in_val = (timestamps >= t_val) & (timestamps < t_test)  # (N,)
        in_test = timestamps >= t_test  # (N,)
        if cfg.targets == "next":
            in_val = _first_in_window(in_val, pos)
            in_test = _first_in_window(in_test, pos)
        val = _drop_no_history(_pairs(user, pos, in_val), excluded)
        test = _drop_no_history(_pairs(user, pos, in_test), excluded)
        return SplitPlan("temporal", train_len, val, test, excluded, targets=cfg.targets,
                         cutoffs={"t_val": t_val, "t_test": t_test},
                         n_val_users=len(np.unique(val[:, 0])), n_test_users=len(np.unique(test[:, 0])))
    # user protocol
    role = user_roles(n_users, cfg) if roles is None else roles  # (U,)
    train_len = np.where(role == 0, lengths, 0).astype(np.int64)  # (U,)
    if cfg.targets == "all":
        candidate = pos >= 1  # (N,)
    else:
        candidate = pos == lengths[user] - 1  # (N,)
    val = _drop_no_history(_pairs(user, pos, candidate & (role[user] == 1)), excluded)
    test = _drop_no_history(_pairs(user, pos, candidate & (role[user] == 2)), excluded)
    return SplitPlan("user", train_len, val, test, excluded, targets="all" if cfg.targets == "all" else "last",
                     n_val_users=int((role == 1).sum()), n_test_users=int((role == 2).sum()))


def _first_in_window(in_window: np.ndarray, pos: np.ndarray) -> np.ndarray:
    prev = np.zeros_like(in_window)  # (N,)
    prev[1:] = in_window[:-1]
    return in_window & ((pos == 0) | ~prev)  # (N,)


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):  # outside the years 1-9999 (the adapters refuse such times)
        return f"{t:.6g} s"


def drop_cold_targets(plan: SplitPlan, offsets: np.ndarray, item_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Drop the candidate targets whose item is unknown to the item vocabulary.

    Returns:
        ``(val, test, cold_val, cold_test)``: the kept (K, 2) int64 targets and the counts dropped from each.
    """
    kept: list[np.ndarray] = []
    cold: list[int] = []
    for pairs in (plan.val, plan.test):
        rows = offsets[pairs[:, 0]] + pairs[:, 1]  # (K,)
        warm = item_idx[rows] != UNK_IDX  # (K,)
        cold.append(int((~warm).sum()))
        kept.append(pairs[warm].astype(np.int64).reshape(-1, 2))
    return kept[0], kept[1], cold[0], cold[1]


def describe_split(
    plan: SplitPlan, *, n_val: int, n_test: int, cold_val: int, cold_test: int, no_history: int
) -> str:
    """The human-readable description of a split (cut-off dates, counts, exclusions).

    Args:
        plan: the plan (its protocol, cut-offs, targets mode, ``train_len`` and user counts are described).
        n_val: validation targets kept.
        n_test: test targets kept.
        cold_val: validation targets dropped for a cold item.
        cold_test: test targets dropped for a cold item.
        no_history: targets at position 0 excluded.
    """
    n_train = int(plan.train_len.sum())
    n_train_users = int((plan.train_len > 0).sum())
    if plan.protocol == "temporal":
        head = (
            f"temporal split: training events before {_iso(plan.cutoffs['t_val'])}, validation window "
            f"[{_iso(plan.cutoffs['t_val'])}, {_iso(plan.cutoffs['t_test'])}), test from "
            f"{_iso(plan.cutoffs['t_test'])}; targets={plan.targets}"
        )
    elif plan.protocol == "leave-one-out":
        head = (
            "leave-one-out split: last event = test, second-last = validation (users with >= 3 events); note: it "
            "mixes time periods across users"
        )
    else:
        head = (
            f"user split: {n_train_users} training / {plan.n_val_users} validation / {plan.n_test_users} test users "
            f"(seeded); targets={plan.targets}"
        )
    return (
        f"{head}; {n_train} training events from {n_train_users} users; {n_val} validation targets "
        f"({cold_val} cold-item excluded), {n_test} test targets ({cold_test} cold-item excluded); "
        f"{no_history} targets without history excluded"
    )


def finalize_split(plan: SplitPlan, offsets: np.ndarray, item_idx: np.ndarray) -> Split:
    """Drop targets whose item is unknown to the item vocabulary and describe the split.

    Args:
        plan: from :func:`plan_split`.
        offsets: (U + 1,) CSR offsets.
        item_idx: (N,) encoded items (``UNK_IDX`` = unseen in training).

    Returns:
        The :class:`~intentrec.structs.Split`.
    """
    val, test, cold_val, cold_test = drop_cold_targets(plan, offsets, item_idx)
    excluded = dict(plan.excluded)
    excluded["cold_item"] = cold_val + cold_test
    description = describe_split(plan, n_val=len(val), n_test=len(test), cold_val=cold_val, cold_test=cold_test,
                                 no_history=excluded["no_history"])
    return Split(
        train_len=plan.train_len.astype(np.int64),
        val_targets=val,
        test_targets=test,
        protocol=plan.protocol,  # type: ignore[arg-type]
        description=description,
        excluded=excluded,
        cold_targets={"validation": cold_val, "test": cold_test},
    )


def check_split(split: Split, offsets: np.ndarray, timestamps: np.ndarray, cutoffs: dict[str, float] | None = None) -> None:
    """Check the leakage invariants of a split (an internal consistency check, cheap).

    * ``0 <= train_len[u] <= n_u``;
    * every target has ``1 <= position < n_u`` and ``position >= train_len[u]`` (never a training event);
    * validation and test targets are disjoint;
    * temporal: training events precede ``t_val``, validation targets lie in ``[t_val, t_test)``, test targets at
      or after ``t_test``;
    * user: users with targets have no training events, and validation and test users are disjoint.

    Raises:
        DataError: an invariant does not hold (a bug; please report it).
    """
    lengths = np.diff(offsets)  # (U,)
    problems: list[str] = []
    if (split.train_len < 0).any() or (split.train_len > lengths).any():
        problems.append("train_len outside [0, n_u]")
    for name, pairs in (("validation", split.val_targets), ("test", split.test_targets)):
        u, p = pairs[:, 0], pairs[:, 1]
        if len(pairs) and ((p < 1).any() or (p >= lengths[u]).any()):
            problems.append(f"{name} target position outside [1, n_u)")
        if len(pairs) and (p < split.train_len[u]).any():
            problems.append(f"{name} target inside the training prefix")
        if cutoffs:
            t = timestamps[offsets[u] + p]
            lo, hi = (cutoffs["t_val"], cutoffs["t_test"]) if name == "validation" else (cutoffs["t_test"], np.inf)
            if ((t < lo) | (t >= hi)).any():
                problems.append(f"{name} target outside its time window")
    both = {tuple(x) for x in split.val_targets.tolist()} & {tuple(x) for x in split.test_targets.tolist()}
    if both:
        problems.append("validation and test targets overlap")
    if cutoffs:
        mask = training_mask(offsets, split.train_len)
        if len(timestamps) and (timestamps[mask] >= cutoffs["t_val"]).any():
            problems.append("training event at or after the validation cut-off")
    if split.protocol == "user":
        vu, tu = np.unique(split.val_targets[:, 0]), np.unique(split.test_targets[:, 0])
        held_out = np.concatenate([vu, tu])
        if np.intersect1d(vu, tu).size or (split.train_len[held_out] > 0).any():
            problems.append("user sets overlap")
    if problems:
        raise DataError("internal split check failed: " + "; ".join(problems) + " (please report this bug)")


def refit_split(split: Split, offsets: np.ndarray, timestamps: np.ndarray, *, t_test: float | None = None,
                roles: np.ndarray | None = None) -> Split:
    """The split of a refit: training extended over the validation period, the test targets unchanged.

    After early stopping has chosen the number of epochs on the validation targets, a refit trains a new model on
    the training *and* validation events and is scored on the same test targets (what a deployed model would be
    trained on; RecBole's leave-one-out cannot do it). Per protocol:

    * ``leave-one-out``: each user's validation event (position n - 2) becomes the last training event;
    * ``temporal``: every event before the test cut-off ``t_test`` is a training event;
    * ``user``: validation users' whole sequences become training sequences (``roles`` from
      :func:`user_roles`).

    The validation targets are empty afterwards (they are training targets now). Vocabularies and statistics are
    not refitted: the caller keeps those of the original split, so the two models rank the same catalogue and
    their test targets pair one to one.

    Raises:
        ConfigError: ``t_test`` missing for a temporal split, or ``roles`` missing for a user split.
        DataError: the extended prefix would reach a test target (a bug; please report it).
    """
    lengths = np.diff(offsets).astype(np.int64)  # (U,)
    if split.protocol == "leave-one-out":
        # every evaluated user (n >= 3), a cold validation item included: the event is theirs to train on
        train_len = np.where(lengths >= 3, lengths - 1, split.train_len).astype(np.int64)  # (U,)
    elif split.protocol == "temporal":
        if t_test is None:
            raise ConfigError("refitting a temporal split needs its test cut-off t_test")
        user, _ = event_positions(offsets)
        before = timestamps < t_test  # (N,)
        train_len = np.bincount(user, weights=before, minlength=len(lengths)).astype(np.int64)  # (U,)
    else:
        if roles is None:
            raise ConfigError("refitting a user split needs the users' roles (intentrec.data.split.user_roles)")
        train_len = np.where(roles == 1, lengths, split.train_len).astype(np.int64)  # (U,)
    tu, tp = split.test_targets[:, 0], split.test_targets[:, 1]
    if len(tu) and (tp < train_len[tu]).any():
        raise DataError("internal refit check failed: a test target falls inside the extended training prefix "
                        "(please report this bug)")
    added = int(train_len.sum() - split.train_len.sum())
    n_train_users = int((train_len > 0).sum())
    description = (
        f"{split.description}; refit: training extended over the validation period ({added} events more, "
        f"{int(train_len.sum())} training events from {n_train_users} users), no validation targets left"
    )
    return Split(
        train_len=train_len,
        val_targets=np.zeros((0, 2), dtype=np.int64),
        test_targets=split.test_targets,
        protocol=split.protocol,
        description=description,
        excluded=dict(split.excluded),
        cold_targets=dict(split.cold_targets),
    )

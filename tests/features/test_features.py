"""Features: window starts vs brute force, left padding, next-step targets, windows tile the training prefix."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intentrec.features.collate import CollateSettings, collate
from intentrec.features.dataset import EvalTargets, TrainingWindows, duration_weights, example_from_events
from intentrec.features.windows import gap_buckets, window_starts
from intentrec.structs import AttributeSpec, DataSpec, EncodedSequences, Split
from intentrec.vocab import ItemVocab, LabelVocab


def _brute_force_starts(ts: np.ndarray, horizon: float) -> list[int]:
    out = []
    for k in range(len(ts)):
        out.append(min(i for i in range(k + 1) if ts[k] - ts[i] <= horizon))
    return out


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=40),
    horizon=st.floats(min_value=1.0, max_value=5e6),
)
def test_window_starts_match_brute_force(gaps: list[float], horizon: float) -> None:
    ts = np.cumsum(np.asarray(gaps, dtype=np.float64))
    assert window_starts(ts, horizon, True, 10).tolist() == _brute_force_starts(ts, horizon)


def test_untimed_window_is_last_m_events_and_off_means_whole_prefix() -> None:
    assert window_starts(np.arange(6.0), None, False, 3).tolist() == [0, 0, 0, 1, 2, 3]
    assert window_starts(np.array([0.0, 5.0, 1e9]), None, True, 3).tolist() == [0, 0, 0]


def test_gap_buckets_are_monotone_and_capped() -> None:
    ts = np.cumsum([0.0, 1.0, 10.0, 1e3, 1e6, 1e12])
    b = gap_buckets(ts, 16, True)
    assert b[0] == 0 and (np.diff(b[1:]) >= 0).all() and b.max() == 15


def _toy_data(train_len: list[int], lengths: list[int]) -> EncodedSequences:
    """Users with items 2.., a single-label intent 'act' = item % 3 + 2 and a multi-label 'tag'."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    items = (np.arange(n) % 7 + 2).astype(np.int64)
    act = (items % 3 + 2).astype(np.int64)
    tag = np.stack([items % 2 + 2, np.where(items % 4 == 0, 4, 0)], axis=1).astype(np.int64)
    spec = DataSpec(
        n_items=9,
        attributes=(AttributeSpec("act", 5, False, True, True), AttributeSpec("tag", 5, True, True, True)),
        numeric=(),
        timed=True,
    )
    return EncodedSequences(
        user_ids=tuple(f"u{i}" for i in range(len(lengths))),
        offsets=offsets,
        item_idx=items,
        timestamps=np.arange(n, dtype=np.float64) * 3600.0,
        duration=np.arange(1, n + 1, dtype=np.float32),
        session=np.zeros(n, dtype=np.int64),
        categorical={"act": act, "tag": tag},
        numeric=np.zeros((n, 0), dtype=np.float32),
        split=Split(
            train_len=np.asarray(train_len, dtype=np.int64),
            val_targets=np.zeros((0, 2), dtype=np.int64),
            test_targets=np.zeros((0, 2), dtype=np.int64),
            protocol="leave-one-out",
        ),
        spec=spec,
        item_vocab=ItemVocab(tuple(str(i) for i in range(7))),
        label_vocabs={"act": LabelVocab.from_labels("act", ["a", "b", "c"]),
                      "tag": LabelVocab.from_labels("tag", ["x", "y", "z"])},
        duration_median=2.0,
    )


def _settings(data: EncodedSequences) -> CollateSettings:
    return CollateSettings(horizon_seconds=7200.0, short_window_events=10, timed=True, gap_buckets=32,
                           numeric_dim=0, attributes=(("act", 0), ("tag", 2)), intents=("act", "tag"))


@pytest.mark.parametrize("max_len", [1, 2, 3, 5, 50])
def test_training_windows_make_every_training_event_a_target_exactly_once(max_len: int) -> None:
    data = _toy_data(train_len=[7, 0, 3, 1], lengths=[9, 4, 3, 2])
    windows = TrainingWindows(data, max_len, "none")
    seen: list[tuple[int, int]] = []
    for i in range(len(windows)):
        u, start, end = (int(x) for x in windows.windows[i])
        ex = windows[i]
        assert ex.item_idx.shape[0] == end - start - 1 <= max_len
        seen += [(u, p) for p in range(start + 1, end)]
    expected = [(u, p) for u, tl in enumerate([7, 0, 3, 1]) for p in range(1, tl)]
    assert sorted(seen) == sorted(expected)
    assert windows.n_targets == len(expected)


def test_targets_are_the_labels_of_the_next_event_and_padding_is_left() -> None:
    data = _toy_data(train_len=[6, 3], lengths=[6, 3])
    ex_long = example_from_events(data, 0, 0, 6, "all", "target")
    ex_short = example_from_events(data, 1, 0, 3, "all", "none")
    s = data.user_slice(0)
    np.testing.assert_array_equal(ex_long.target_item, data.item_idx[s][1:])
    np.testing.assert_array_equal(ex_long.target_intents["act"], data.categorical["act"][s][1:])
    np.testing.assert_array_equal(ex_long.target_intents["tag"], data.categorical["tag"][s][1:])
    # duration weight of the *target* event, relative to the training median (2.0)
    np.testing.assert_allclose(ex_long.target_weight, np.clip(data.duration[s][1:] / 2.0, 0.1, 10))
    batch = collate([ex_long, ex_short], _settings(data))
    assert batch.item_idx.shape == (2, 5)
    assert batch.valid[1].tolist() == [False, False, False, True, True]
    assert batch.item_idx[1, :3].tolist() == [0, 0, 0]
    assert batch.target_intents["tag"].shape == (2, 5, 2)
    assert batch.position[1].tolist() == [0, 0, 0, 0, 1]
    # window starts are column indices inside the padded row; H = 2 h with hourly events -> k - 2
    assert batch.window_start[0].tolist() == [0, 0, 0, 1, 2]
    assert batch.window_start[1].tolist() == [0, 1, 2, 3, 3]
    assert float(batch.time_hours[0, -1]) == pytest.approx(4.0)


def test_eval_example_has_a_single_target_at_the_last_position() -> None:
    data = _toy_data(train_len=[4], lengths=[8])
    ds = EvalTargets(data, np.array([[0, 6]]), max_len=3)
    ex = ds[0]
    s = data.user_slice(0)
    np.testing.assert_array_equal(ex.item_idx, data.item_idx[s][3:6])  # the latest 3 events before position 6
    assert ex.target_item.tolist() == [0, 0, int(data.item_idx[s][6])]
    assert ex.target_weight.tolist() == [0.0, 0.0, 1.0]


def test_duration_weight_modes() -> None:
    d = np.array([0.0, 2.0, 50.0], dtype=np.float32)
    assert duration_weights(d, 2.0, "none").tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(duration_weights(d, 2.0, "target"), [0.1, 1.0, 10.0])


def test_bucketed_batches_cover_every_example_once_with_similar_lengths() -> None:
    from intentrec.features.dataset import bucketed_batches

    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    batches = bucketed_batches(lengths, 32, np.random.default_rng(1), bucket_batches=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert max(len(b) for b in batches) == 32
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10  # plain shuffling gives a spread of ~45 per batch
    again = bucketed_batches(lengths, 32, np.random.default_rng(1), bucket_batches=10)
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))


def test_window_start_boundary_follows_the_definition_despite_rounding() -> None:
    ts = np.array([0.001, 64.001])  # 64.001 - 64.0 rounds above 0.001, yet T_1 - T_0 == 64.0 <= H
    assert window_starts(ts, 64.0, True, 10).tolist() == _brute_force_starts(ts, 64.0) == [0, 0]

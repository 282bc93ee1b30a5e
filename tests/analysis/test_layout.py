"""Intent-driven page layout (intentrec.analysis.layout): item labels per source, page building and the offline
evaluation, on a hand-made 12-item catalogue."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intentrec.analysis.inference import IntentReadout
from intentrec.analysis.layout import (
    DISCOVERY,
    TOP_PICKS,
    ItemLabels,
    Page,
    PageRow,
    RowSpec,
    build_page,
    evaluate_layouts,
    fixed_row_order,
    label_shares,
    locate,
)
from intentrec.evaluate.compare import paired_t_test
from intentrec.features.live import _recency_codes as live_recency_codes
from intentrec.structs import (
    AttributeRule,
    AttributeSpec,
    DataSpec,
    EncodedSequences,
    LiveFeatures,
    Split,
)
from intentrec.vocab import REPEAT_LABELS, ItemVocab, LabelVocab, recency_labels

# ----------------------------------------------------------------------------------------------------------------
# A hand-made catalogue: items 2..13 (0 = PAD, 1 = UNK)
# ----------------------------------------------------------------------------------------------------------------

N_ITEMS = 14
T0 = 1_700_000_000.0  # request time (seconds)
DAY = 86400.0
EDGES = (7.0, 30.0, 365.0)
D, C, A, H = 2, 3, 4, 5  # genre codes: Drama, Comedy, Action, Horror
SHOW, MOVIE = 2, 3  # format codes
NEW, REPEAT = 2, 3  # action codes
# item -> genre codes (multi-valued, width 2; 1 = other)
GENRES = {2: (D, C), 3: (D,), 4: (C,), 5: (A,), 6: (A, D), 7: (H,), 8: (C,), 9: (D,), 10: (A,), 11: (H, C), 12: (1,), 13: (D,)}
FORMATS = {2: SHOW, 3: SHOW, 4: SHOW, 5: MOVIE, 6: MOVIE, 7: MOVIE, 8: MOVIE, 9: MOVIE, 10: MOVIE, 11: SHOW, 12: 1, 13: MOVIE}
# item -> age in days at T0 (NaN = unknown release date; negative = released after the request)
AGES = {2: 0.0, 3: 7.0, 4: 7.5, 5: 30.0, 6: 31.0, 7: 365.0, 8: 366.0, 9: math.nan, 10: -2.0, 11: 1000.0, 12: 100.0, 13: 3.0}
# recency codes: 2 '<=7d', 3 '7d-30d', 4 '30d-365d', 5 '>365d', 1 other
RECENCY = {2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 8: 5, 9: 1, 10: 2, 11: 5, 12: 4, 13: 2}
SERIES = {2: 0, 3: 0, 4: 0, 11: 1}  # items 2-4: episodes of one show; 11: another show

VOCABS = {
    "action": LabelVocab.from_labels("action", REPEAT_LABELS),
    "genre": LabelVocab("genre", ("<pad>", "other", "Drama", "Comedy", "Action", "Horror")),
    "format": LabelVocab("format", ("<pad>", "other", "show", "movie")),
    "recency": LabelVocab.from_labels("recency", recency_labels(EDGES)),
    "device": LabelVocab("device", ("<pad>", "other", "tv", "phone")),
}


def _spec() -> DataSpec:
    multi = {"genre"}
    return DataSpec(
        n_items=N_ITEMS,
        attributes=tuple(AttributeSpec(n, len(v), n in multi, True, True) for n, v in VOCABS.items()),
        numeric=(),
        timed=True,
        dataset="hand-made",
    )


def _live(repeat_field: str | None = None) -> LiveFeatures:
    genre = np.zeros((N_ITEMS, 2), dtype=np.int64)  # (I, L)
    for i, codes in GENRES.items():
        genre[i, : len(codes)] = codes
    fmt = np.zeros(N_ITEMS, dtype=np.int64)  # (I,)
    for i, c in FORMATS.items():
        fmt[i] = c
    release = np.full(N_ITEMS, np.nan)  # (I,)
    for i, age in AGES.items():
        release[i] = T0 - age * DAY
    series = np.arange(N_ITEMS, dtype=np.int64) + N_ITEMS  # (I,) as data.live: own group unless in a series
    for i, s in SERIES.items():
        series[i] = s
    return LiveFeatures(
        rules=(
            AttributeRule("action", "repeat", repeat_field, False, 0),
            AttributeRule("genre", "item", None, True, 2),
            AttributeRule("format", "item", None, False, 0),
            AttributeRule("recency", "recency", None, False, 0, EDGES),
            AttributeRule("device", "event", "device", False, 0),
        ),
        numeric=(),
        item_codes={"genre": genre, "format": fmt},
        item_release={"recency": release},
        item_series={"action": series},
        item_numeric=np.zeros((N_ITEMS, 0), dtype=np.float32),
        popularity=np.ones(N_ITEMS, dtype=np.int64),
    )


@pytest.fixture(scope="module")
def labels() -> ItemLabels:
    return ItemLabels.from_live(_live(), _spec(), VOCABS)


def _only(labels: ItemLabels, *heads: str) -> ItemLabels:
    """The same tables restricted to some heads."""
    return ItemLabels(
        heads=heads,
        rules={h: labels.rules[h] for h in heads},
        label_vocabs={h: labels.label_vocabs[h] for h in heads},
        item_codes={h: v for h, v in labels.item_codes.items() if h in heads},
        item_release={h: v for h, v in labels.item_release.items() if h in heads},
        item_series={h: v for h, v in labels.item_series.items() if h in heads},
        n_items=labels.n_items,
    )


def _probs(**given: dict[int, float]) -> dict[str, np.ndarray]:
    """Per head (d,) probabilities: the given label -> p, the rest of the mass spread over the other labels."""
    out = {}
    for head, vocab in VOCABS.items():
        p = np.zeros(len(vocab))
        spec = given.get(head, {})
        for c, v in spec.items():
            p[c] = v
        rest = [c for c in range(1, len(vocab)) if c not in spec]
        if rest:
            p[rest] = max(0.0, 1.0 - p.sum()) / len(rest)
        out[head] = p
    return out


ALL_ITEMS = np.arange(2, N_ITEMS, dtype=np.int64)  # (12,)


# ----------------------------------------------------------------------------------------------------------------
# labels_for
# ----------------------------------------------------------------------------------------------------------------


def test_row_heads_skip_interaction_attributes(labels: ItemLabels) -> None:
    assert labels.row_heads == ("action", "genre", "format", "recency")
    assert labels.discovery_head == "genre"
    with pytest.raises(ValueError, match="property of the interaction"):
        labels.labels_for("device", ALL_ITEMS, request_time=T0, history=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="unknown intent head"):
        labels.labels_for("nope", ALL_ITEMS, request_time=T0, history=np.zeros(0, np.int64))


def test_item_labels_multi_and_single(labels: ItemLabels) -> None:
    genre = labels.labels_for("genre", ALL_ITEMS, request_time=T0, history=np.zeros(0, np.int64))
    assert genre.shape == (12, 6) and genre.dtype == bool
    for row, item in enumerate(ALL_ITEMS.tolist()):
        assert set(np.flatnonzero(genre[row]).tolist()) == set(GENRES[item])
    fmt = labels.labels_for("format", ALL_ITEMS, request_time=T0, history=np.zeros(0, np.int64))
    assert fmt.sum(axis=1).tolist() == [1] * 12
    assert np.argmax(fmt, axis=1).tolist() == [FORMATS[i] for i in ALL_ITEMS.tolist()]
    pad = labels.labels_for("genre", np.array([0, 1]), request_time=T0, history=np.zeros(0, np.int64))
    assert not pad.any()  # PAD/UNK rows carry no label (and the PAD column is never set)


def test_recency_buckets_edges_inclusive_and_unknown_release(labels: ItemLabels) -> None:
    rec = labels.labels_for("recency", ALL_ITEMS, request_time=T0, history=np.zeros(0, np.int64))
    assert rec.sum(axis=1).tolist() == [1] * 12
    got = dict(zip(ALL_ITEMS.tolist(), np.argmax(rec, axis=1).tolist(), strict=True))
    assert got == RECENCY  # 7 d -> '<=7d', 30 d -> '7d-30d', 365 d -> '30d-365d', NaN -> other, -2 d -> '<=7d'
    # the same codes as the serving path (features.live) for events at T0
    release = labels.item_release["recency"][ALL_ITEMS]
    rule = labels.rules["recency"]
    expected = live_recency_codes(np.full(12, T0), release, rule, VOCABS["recency"])
    assert np.argmax(rec, axis=1).tolist() == expected.tolist()


def test_repeat_by_series_and_by_item_identity(labels: ItemLabels) -> None:
    history = np.array([3, 9], dtype=np.int64)  # an episode of show 0 and movie 9
    rep = labels.labels_for("action", ALL_ITEMS, request_time=T0, history=history)
    repeat_items = {i for i, row in zip(ALL_ITEMS.tolist(), rep, strict=True) if row[REPEAT]}
    assert repeat_items == {2, 3, 4, 9}  # the whole series of item 3
    assert (rep[:, NEW] ^ rep[:, REPEAT]).all()
    # a series read from the request event cannot be known for a candidate: item identity
    by_item = ItemLabels.from_live(_live(repeat_field="show_id"), _spec(), VOCABS)
    rep = by_item.labels_for("action", ALL_ITEMS, request_time=T0, history=history)
    assert {i for i, row in zip(ALL_ITEMS.tolist(), rep, strict=True) if row[REPEAT]} == {3, 9}


def test_row_titles(labels: ItemLabels) -> None:
    assert labels.row_title("action", REPEAT) == "Continue watching"
    assert labels.row_title("action", NEW) == "Something new for you"
    assert [labels.row_title("recency", c) for c in (2, 3, 4, 5)] == [
        "New releases",
        "Released 7–30 days ago",
        "Released 30 days – 1 year ago",
        "Older favourites",
    ]
    assert labels.row_title("format", SHOW) == "Shows" and labels.row_title("format", MOVIE) == "Movies"
    assert labels.row_title("genre", C) == "Comedy"
    assert labels.row_title(*TOP_PICKS) == "Top picks for you"
    assert labels.row_title(*DISCOVERY) == "Something different"


# ----------------------------------------------------------------------------------------------------------------
# build_page
# ----------------------------------------------------------------------------------------------------------------


def test_intent_page_orders_rows_by_probability(labels: ItemLabels) -> None:
    probs = _probs(action={NEW: 0.3, REPEAT: 0.7}, genre={C: 0.6}, format={SHOW: 0.5}, recency={2: 0.45})
    ranked = np.array([10, 8, 2, 7, 4, 13, 5, 3, 6, 11, 9, 12], dtype=np.int64)
    history = np.array([3], dtype=np.int64)
    page = build_page(ranked, probs, labels, request_time=T0, history=history, n_rows=5, row_size=3, min_row_items=2)
    p = [row.spec.probability for row in page.rows]
    assert p == sorted(p, reverse=True)
    # 1.0 top picks; 0.7 continue watching (the watched series: 2 is already on the page); 0.6 Comedy, 0.5 Shows
    # and 0.45 New releases find one unused item each (< min_row_items: dropped); 0.3 new; 0.25 Movies; the
    # rest (discovery 0.2, recency 0.1375, genres 0.1) have < 2 unused items left
    assert [(r.title, r.items) for r in page.rows] == [
        ("Top picks for you", (10, 8, 2)),
        ("Continue watching", (4, 3)),
        ("Something new for you", (7, 13, 5)),
        ("Movies", (6, 9)),
    ]
    assert locate(page, 10) == (0, 0) and locate(page, 3) == (1, 1) and locate(page, 999) is None
    json.dumps(page.to_json())
    assert "Continue watching" in page.render()


def test_fixed_page_follows_fixed_order(labels: ItemLabels) -> None:
    counts = {
        "action": np.array([0, 0, 80, 20]),
        "genre": np.array([0, 5, 40, 30, 20, 10]),
        "format": np.array([0, 0, 30, 70]),
        "recency": np.array([0, 5, 10, 20, 25, 40]),
    }
    order = fixed_row_order(counts, labels)
    # shares: new .8, movie .7, >365d .4, Drama .381, show .3, Comedy .286, 30d-365d .25, repeat .2 = 7d-30d .2
    # (tie: head order), Action .19, discovery = other + Horror = 15/105 = .143, <=7d .1, Horror .095
    assert order == [
        TOP_PICKS, ("action", NEW), ("format", MOVIE), ("recency", 5), ("genre", D), ("format", SHOW), ("genre", C),
        ("recency", 4), ("action", REPEAT), ("recency", 3), ("genre", A), DISCOVERY, ("recency", 2), ("genre", H),
    ]
    probs = _probs(action={REPEAT: 0.99}, genre={H: 0.9})  # the member's intents must not matter
    ranked = np.array([10, 8, 2, 7, 4, 13, 5, 3, 6, 11, 9, 12], dtype=np.int64)
    page = build_page(
        ranked, probs, labels, request_time=T0, history=np.array([3]), order="fixed", fixed_order=order,
        n_rows=20, row_size=2, min_row_items=1,
    )
    positions = [order.index(r.key) for r in page.rows]
    assert positions == sorted(positions)
    other = build_page(
        ranked, _probs(), labels, request_time=T0, history=np.array([3]), order="fixed", fixed_order=order,
        n_rows=20, row_size=2, min_row_items=1,
    )
    assert [r.key for r in other.rows] == [r.key for r in page.rows]
    with pytest.raises(ValueError, match="fixed_order"):
        build_page(ranked, probs, labels, request_time=T0, history=np.array([3]), order="fixed")


def test_intent_ties_are_broken_by_the_fixed_order(labels: ItemLabels) -> None:
    fmt = _only(labels, "format")
    probs = {"format": np.array([0.0, 0.0, 0.5, 0.5])}
    ranked = np.array([2, 5, 3, 6, 4, 7], dtype=np.int64)
    kw = {"request_time": T0, "history": np.zeros(0, np.int64), "top_picks": False, "row_size": 2, "min_row_items": 1}
    page = build_page(ranked, probs, fmt, fixed_order=[("format", MOVIE), ("format", SHOW)], **kw)
    assert [r.title for r in page.rows][:2] == ["Movies", "Shows"]
    page = build_page(ranked, probs, fmt, **kw)  # no fixed order: the candidate (label) order
    assert [r.title for r in page.rows][:2] == ["Shows", "Movies"]


def test_low_probability_row_still_gets_its_unused_item(labels: ItemLabels) -> None:
    rec = _only(labels, "recency")  # no item head, so no discovery row
    # 8 is ranked last and is the only '>365d' item; that row has the lowest probability
    probs = {"recency": np.array([0.0, 0.0, 0.5, 0.3, 0.15, 0.05])}
    ranked = np.array([2, 3, 13, 10, 4, 5, 6, 7, 12, 8], dtype=np.int64)
    page = build_page(ranked, probs, rec, request_time=T0, history=np.zeros(0, np.int64), row_size=2, min_row_items=1)
    assert [r.title for r in page.rows] == [
        "Top picks for you",
        "New releases",
        "Released 7–30 days ago",
        "Released 30 days – 1 year ago",
        "Older favourites",
    ]
    assert page.rows[-1].items == (8,)
    assert page.rows[1].items == (13, 10) and page.rows[3].items == (6, 7)
    # with min_row_items = 2 the single-item row is dropped, and the item is not shown
    page = build_page(ranked, probs, rec, request_time=T0, history=np.zeros(0, np.int64), row_size=2, min_row_items=2)
    assert locate(page, 8) is None and "Older favourites" not in [r.title for r in page.rows]


def test_continue_watching_holds_only_history_items(labels: ItemLabels) -> None:
    history = np.array([3, 9], dtype=np.int64)
    probs = _probs(action={REPEAT: 0.9})
    ranked = np.array([5, 2, 13, 11, 4, 9, 3, 8, 6, 7], dtype=np.int64)
    kw = {"request_time": T0, "top_picks": False, "min_row_items": 1}
    page = build_page(ranked, probs, labels, history=history, **kw)
    first = page.rows[0]
    assert first.title == "Continue watching" and first.items == (2, 4, 9, 3)  # item or series in the history
    series = labels.item_series["action"]
    assert all(i in history.tolist() or series[i] in series[history] for i in first.items)
    by_item = ItemLabels.from_live(_live(repeat_field="show_id"), _spec(), VOCABS)
    page = build_page(ranked, probs, by_item, history=history, **kw)
    assert page.rows[0].title == "Continue watching" and page.rows[0].items == (9, 3)
    # a ranking that excluded the seen items leaves no continue-watching row
    unseen = ranked[~np.isin(ranked, history)]
    page = build_page(unseen, probs, by_item, history=history, **kw)
    assert "Continue watching" not in [r.title for r in page.rows]


def test_discovery_row_avoids_the_members_top_labels(labels: ItemLabels) -> None:
    probs = _probs(genre={D: 0.4, C: 0.3, A: 0.2, H: 0.05, 1: 0.05})
    ranked = ALL_ITEMS[::-1].copy()
    page = build_page(
        ranked, probs, _only(labels, "genre"), request_time=T0, history=np.zeros(0, np.int64), top_picks=False,
        min_row_items=1, n_rows=10,
    )
    disc = next(r for r in page.rows if r.key == DISCOVERY)
    assert disc.spec.probability == pytest.approx(0.1)  # Horror + other
    assert disc.items == (12, 7)  # items without Drama, Comedy or Action (11 is Horror and Comedy)


def test_bad_arguments(labels: ItemLabels) -> None:
    probs = _probs()
    kw = {"request_time": T0, "history": np.zeros(0, np.int64)}
    with pytest.raises(ValueError, match="min_row_items"):
        build_page(ALL_ITEMS, probs, labels, row_size=2, min_row_items=3, **kw)
    with pytest.raises(ValueError, match="intent_probs has no entry"):
        build_page(ALL_ITEMS, {"genre": probs["genre"]}, labels, **kw)
    with pytest.raises(ValueError, match="label_prior"):
        build_page(ALL_ITEMS, probs, labels, row_score="lift", **kw)


def test_lift_orders_by_probability_over_prior(labels: ItemLabels) -> None:
    fmt = _only(labels, "format")
    prior = label_shares({"format": np.array([0, 0, 20, 80])})
    probs = {"format": np.array([0.0, 0.0, 0.3, 0.7])}  # shows: 0.3 / 0.2 = 1.5 > movies 0.7 / 0.8
    kw = {"request_time": T0, "history": np.zeros(0, np.int64), "top_picks": False, "row_size": 2, "min_row_items": 1}
    assert [r.title for r in build_page(ALL_ITEMS, probs, fmt, **kw).rows][:2] == ["Movies", "Shows"]
    lift = build_page(ALL_ITEMS, probs, fmt, row_score="lift", label_prior=prior, **kw)
    assert [r.title for r in lift.rows][:2] == ["Shows", "Movies"]


# ----------------------------------------------------------------------------------------------------------------
# Property: pages are greedy, duplicate-free, bounded and ordered
# ----------------------------------------------------------------------------------------------------------------


def _matches(labels: ItemLabels, spec: RowSpec, item: int, avoid: list[int], history: np.ndarray) -> bool:
    if spec.kind == "top_picks":
        return True
    if spec.kind == "discovery":
        has = labels.labels_for("genre", np.array([item]), request_time=T0, history=history)[0]
        return not has[avoid].any()
    return bool(labels.labels_for(spec.head, np.array([item]), request_time=T0, history=history)[0, spec.label])


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_page_properties(labels: ItemLabels, data: st.DataObject) -> None:
    ranked = np.array(data.draw(st.lists(st.integers(0, N_ITEMS - 1), max_size=30)), dtype=np.int64)
    history = np.array(data.draw(st.lists(st.integers(2, N_ITEMS - 1), max_size=6)), dtype=np.int64)
    probs = {}
    for head, vocab in VOCABS.items():
        w = np.array([0.0, *data.draw(st.lists(st.floats(0, 1), min_size=len(vocab) - 1, max_size=len(vocab) - 1))])
        probs[head] = w / w.sum() if w.sum() > 0 else np.r_[0.0, np.full(len(vocab) - 1, 1 / (len(vocab) - 1))]
    counts = {h: np.array([0, *data.draw(st.lists(st.integers(0, 50), min_size=len(v) - 1, max_size=len(v) - 1))])
              for h, v in VOCABS.items() if h != "device"}
    row_size = data.draw(st.integers(1, 6))
    n_rows = data.draw(st.integers(1, 12))
    min_row_items = data.draw(st.integers(1, row_size))
    order = data.draw(st.sampled_from(["intent", "fixed"]))
    top_picks = data.draw(st.booleans())
    fixed = fixed_row_order(counts, labels) if data.draw(st.booleans()) or order == "fixed" else None
    page = build_page(
        ranked, probs, labels, request_time=T0, history=history, n_rows=n_rows, row_size=row_size,
        order=order, fixed_order=fixed, min_row_items=min_row_items, top_picks=top_picks,
    )
    shown = [i for r in page.rows for i in r.items]
    assert len(shown) == len(set(shown))  # never an item twice on a page
    assert set(shown) <= set(ranked.tolist()) and all(i >= 2 for i in shown)
    assert len(page.rows) <= n_rows
    assert all(min_row_items <= len(r.items) <= row_size for r in page.rows)
    assert top_picks or all(r.key != TOP_PICKS for r in page.rows)
    if order == "intent":
        p = [r.spec.probability for r in page.rows]
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(p))
    else:
        assert fixed is not None
        pos = [fixed.index(r.key) for r in page.rows]
        assert pos == sorted(pos)
    # each row holds the best-ranked matching items not used by the rows above it
    if order == "intent":
        g = probs["genre"]
        avoid = sorted(range(2, len(g)), key=lambda c: (-g[c], c))[:3]
    else:
        assert fixed is not None
        avoid = [lab for h, lab in fixed if h == "genre" and lab >= 2][:3]
    clean = list(dict.fromkeys(i for i in ranked.tolist() if i >= 2))
    used: set[int] = set()
    for row in page.rows:
        expected = [i for i in clean if i not in used and _matches(labels, row.spec, i, avoid, history)][:row_size]
        assert list(row.items) == expected
        used |= set(row.items)


# ----------------------------------------------------------------------------------------------------------------
# evaluate_layouts on three hand-built targets
# ----------------------------------------------------------------------------------------------------------------


def _sequences(users: list[list[int]]) -> EncodedSequences:
    items = np.array([i for u in users for i in u], dtype=np.int64)  # (N,)
    offsets = np.cumsum([0, *[len(u) for u in users]]).astype(np.int64)  # (U + 1,)
    n = items.shape[0]
    spec = _spec()
    return EncodedSequences(
        user_ids=tuple(f"u{k}" for k in range(len(users))),
        offsets=offsets,
        item_idx=items,
        timestamps=T0 + np.arange(n, dtype=np.float64) * 60.0,
        duration=np.ones(n, dtype=np.float32),
        session=np.zeros(n, dtype=np.int64),
        categorical={a.name: np.zeros((n, 2) if a.multi_valued else n, dtype=np.int64) for a in spec.attributes},
        numeric=np.zeros((n, 0), dtype=np.float32),
        split=Split(
            train_len=np.zeros(len(users), dtype=np.int64),
            val_targets=np.zeros((0, 2), dtype=np.int64),
            test_targets=np.zeros((0, 2), dtype=np.int64),
            protocol="temporal",
        ),
        spec=spec,
        item_vocab=ItemVocab(tuple(f"i{k}" for k in range(2, N_ITEMS))),
        label_vocabs=VOCABS,
    )


def test_evaluate_layouts_hand_computed(labels: ItemLabels) -> None:
    fmt = _only(labels, "format")  # shows 2, 3, 4, 11; movies 5..10, 13
    data = _sequences([[8, 3], [9, 5], [10, 4]])  # each user: one history item, then the next item
    targets = np.array([[0, 1], [1, 1], [2, 1]], dtype=np.int64)
    format_probs = np.array([[0, 0, 0.8, 0.2], [0, 0, 0.5, 0.5], [0, 0, 0.1, 0.9]], dtype=np.float32)  # (T, d)
    ranked = np.tile(np.array([2, 5, 3, 6, 4, 7, 8, 9], dtype=np.int64), (3, 1))  # (T, K)
    readout = IntentReadout(
        targets=targets,
        head_names=("format",),
        intent_probs={"format": format_probs},
        attention=None,
        intent_embedding=None,
        window_events=np.ones(3, dtype=np.int64),
        input_events=np.ones(3, dtype=np.int64),
        top_items=ranked,
        top_scores=np.zeros(ranked.shape, dtype=np.float32),
    )
    counts = {"format": np.array([0.0, 0.0, 10.0, 30.0])}  # fixed order: top picks, Movies, Shows
    ev = evaluate_layouts(readout, data, fmt, label_counts=counts, n_rows=2, row_size=2, min_row_items=1)
    # intent pages: [2, 5] then Shows [3, 4] | tie -> fixed order: Movies [6, 7] | Movies [6, 7]
    # fixed pages:  [2, 5] then Movies [6, 7] for everyone
    # next items 3, 5, 4 -> intent rows 2, 1, miss (3); fixed rows miss (3), 1, miss (3)
    assert ev.intent_rows.tolist() == [2, 1, 3]
    assert ev.fixed_rows.tolist() == [3, 1, 3]
    assert ev.intent.mean_row == pytest.approx(2.0) and ev.fixed.mean_row == pytest.approx(7 / 3)
    assert ev.intent.hit_rate == pytest.approx(2 / 3) and ev.fixed.hit_rate == pytest.approx(1 / 3)
    assert ev.intent.mean_row_hits == pytest.approx(1.5) and ev.fixed.mean_row_hits == pytest.approx(1.0)
    assert ev.intent.mean_reciprocal_row == pytest.approx(0.5) and ev.fixed.mean_reciprocal_row == pytest.approx(1 / 3)
    assert ev.intent.top3_share == pytest.approx(2 / 3)  # a miss (row n_rows + 1 = 3) is not "in the first 3 rows"
    assert ev.mean_difference == pytest.approx(-1 / 3)
    assert ev.intent.first_rows[0] == ("Movies", pytest.approx(2 / 3))
    assert ev.fixed.first_rows == (("Movies", 1.0),)
    assert ev.fixed_order[:3] == (TOP_PICKS, ("format", MOVIE), ("format", SHOW))
    t, p = paired_t_test(ev.intent_rows, ev.fixed_rows)
    assert ev.t_statistic == pytest.approx(t) and ev.p_value == pytest.approx(p)
    # no-rows reference: ranking [2, 5 | 3, 6] -> next items 3, 5, 4 sit in rows 2, 1, miss (3)
    assert ev.ranked is not None and ev.ranked.mean_row == pytest.approx(2.0)
    assert ev.ranked.hit_rate == pytest.approx(2 / 3)
    doc = ev.to_json(include_targets=True)
    json.dumps(doc)
    assert doc["intent_rows"] == [2, 1, 3] and doc["ranked"]["mean_row"] == pytest.approx(2.0)


def test_page_json_round_trip_types() -> None:
    spec = RowSpec("intent", "genre", C, "Comedy", 0.25)
    page = Page((PageRow(spec, (4, 8)),), "intent")
    assert page.to_json() == {
        "order": "intent",
        "rows": [{"kind": "intent", "head": "genre", "label": C, "title": "Comedy", "probability": 0.25, "items": [4, 8]}],
    }
    assert page.locate(8) == (0, 1)

"""Primary intents, shifts, alignment, cluster profiles and the per-user table, on hand-built examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from intentrec.analysis.clusters import ClusterResult
from intentrec.analysis.inference import IntentReadout
from intentrec.analysis.intents import (
    alignment,
    cluster_profiles,
    intent_shifts,
    primary_intents,
    user_table,
)
from intentrec.structs import AttributeSpec, DataSpec, EncodedSequences, Split
from intentrec.vocab import ItemVocab, LabelVocab

# genre: 2 Drama, 3 Comedy, 4 Anime (multi-valued, intent); repeat: 2 new, 3 repeat (intent);
# format: 2 movie, 3 show (input only)
_USERS = {
    "u0": {"item": [2, 3, 2, 4], "genre": [[2, 3], [2, 0], [4, 0], [3, 2]], "repeat": [2, 2, 3, 3],
           "format": [2, 3, 2, 2]},
    "u1": {"item": [4, 5, 5], "genre": [[3, 0], [3, 4], [3, 0]], "repeat": [2, 2, 3], "format": [3, 3, 2]},
    "u2": {"item": [2, 2, 3], "genre": [[2, 0], [2, 2], [0, 0]], "repeat": [2, 3, 0], "format": [2, 2, 2]},
}
_TARGETS = np.array([[0, 3], [1, 2], [2, 2]], dtype=np.int64)  # each user's last event


def _data() -> EncodedSequences:
    users = list(_USERS.values())
    offsets = np.concatenate([[0], np.cumsum([len(u["item"]) for u in users])]).astype(np.int64)
    cat = {k: np.concatenate([np.asarray(u[k], dtype=np.int64) for u in users]) for k in ("genre", "repeat", "format")}
    n = int(offsets[-1])
    return EncodedSequences(
        user_ids=tuple(_USERS),
        offsets=offsets,
        item_idx=np.concatenate([np.asarray(u["item"], dtype=np.int64) for u in users]),
        timestamps=np.arange(n, dtype=np.float64),
        duration=np.ones(n, dtype=np.float32),
        session=np.zeros(n, dtype=np.int64),
        categorical=cat,
        numeric=np.zeros((n, 0), dtype=np.float32),
        split=Split(train_len=np.zeros(3, dtype=np.int64), val_targets=np.zeros((0, 2), dtype=np.int64),
                    test_targets=_TARGETS, protocol="user"),
        spec=DataSpec(
            n_items=6,
            attributes=(AttributeSpec("genre", 5, True, True, True), AttributeSpec("repeat", 4, False, True, True),
                        AttributeSpec("format", 4, False, True, False)),
            numeric=(), timed=True,
        ),
        item_vocab=ItemVocab(("a", "b", "c", "d")),
        label_vocabs={"genre": LabelVocab.from_labels("genre", ["Drama", "Comedy", "Anime"]),
                      "repeat": LabelVocab.from_labels("repeat", ["new", "repeat"]),
                      "format": LabelVocab.from_labels("format", ["movie", "show"])},
        item_names=("Alpha", "Beta", "Gamma", "Delta"),
    )


def _readout(attention: np.ndarray | None) -> IntentReadout:
    t = _TARGETS.shape[0]
    genre = np.array([[0.5, 0.0, 0.3, 0.1, 0.1],  # PAD column is largest: must be ignored -> Drama
                      [0.0, 0.1, 0.2, 0.3, 0.4],  # Anime, then Comedy, Drama
                      [0.0, 0.1, 0.7, 0.1, 0.1]], dtype=np.float32)
    repeat = np.array([[0.0, 0.1, 0.6, 0.3],  # new, then repeat
                       [0.0, 0.1, 0.2, 0.7],  # repeat
                       [0.0, 0.1, 0.2, 0.7]], dtype=np.float32)
    return IntentReadout(
        targets=_TARGETS, head_names=("genre", "repeat"), intent_probs={"genre": genre, "repeat": repeat},
        attention=attention, intent_embedding=None if attention is None else np.eye(t, 4, dtype=np.float32),
        window_events=np.array([3, 2, 2]), input_events=np.array([3, 2, 2]),
        top_items=np.array([[3, 2], [2, 4], [5, 1]]), top_scores=np.zeros((t, 2), dtype=np.float32),
    )


_ATT = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]], dtype=np.float32)


def _generic_readout(attention: np.ndarray, targets: np.ndarray) -> IntentReadout:
    t, m = attention.shape
    return IntentReadout(
        targets=targets, head_names=tuple(f"h{i}" for i in range(m)),
        intent_probs={f"h{i}": np.full((t, 3), 1 / 3, dtype=np.float32) for i in range(m)},
        attention=attention.astype(np.float32), intent_embedding=np.zeros((t, 2), dtype=np.float32),
        window_events=np.ones(t, dtype=np.int64), input_events=np.ones(t, dtype=np.int64),
        top_items=np.zeros((t, 0), dtype=np.int64), top_scores=np.zeros((t, 0), dtype=np.float32),
    )


def test_primary_intent_is_argmax_attention() -> None:
    att = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    pr = primary_intents(_generic_readout(att, np.array([[0, 1], [1, 1], [2, 1], [3, 1]])))
    np.testing.assert_array_equal(pr.primary, [1, 0, 2, 1])
    np.testing.assert_array_equal(pr.counts, [1, 2, 1])
    np.testing.assert_allclose(pr.weight, [0.5, 0.6, 0.7, 0.4], rtol=1e-6)
    np.testing.assert_allclose(pr.margin, [0.2, 0.3, 0.5, 0.1], rtol=1e-5)
    np.testing.assert_allclose(pr.mean_attention, att.mean(axis=0), rtol=1e-6)
    assert pr.shares.sum() == pytest.approx(1.0)
    doc = pr.to_json()
    assert doc["heads"]["h0"]["share"] == 0.25 and doc["heads"]["h1"]["count"] == 2
    json.dumps(doc)


def test_primary_intents_need_attention() -> None:
    with pytest.raises(ValueError, match="V2/V3"):
        primary_intents(_readout(None))


def test_shift_rate_on_two_users() -> None:
    # u0 sessions at positions 3, 5, 8 -> heads 0, 1, 1; u1 at 2, 4 -> heads 2, 0. Rows are shuffled on purpose.
    rows = [((0, 5), 1), ((1, 4), 0), ((0, 3), 0), ((1, 2), 2), ((0, 8), 1)]
    att = np.full((5, 3), 0.1)
    for r, (_, head) in enumerate(rows):
        att[r, head] = 0.8
    sh = intent_shifts(_generic_readout(att, np.array([t for t, _ in rows])))
    np.testing.assert_array_equal(sh.users, [0, 1])
    assert [s.tolist() for s in sh.sequences] == [[0, 1, 1], [2, 0]]
    assert sh.n_pairs == 3 and sh.n_changes == 2
    assert sh.change_rate == pytest.approx(2 / 3)
    np.testing.assert_array_equal(sh.distinct, [2, 2])
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[0, 1] = expected[1, 1] = expected[2, 0] = 1
    np.testing.assert_array_equal(sh.transitions, expected)
    # latest session first: u0 -> 1, u1 -> 0; then u0 -> 1, u1 -> 2; then u0 -> 0
    np.testing.assert_array_equal(sh.by_session_from_end, [[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    doc = sh.to_json()
    assert doc["share_of_users_who_change"] == 1.0 and doc["distinct_histogram"] == {"2": 2}
    json.dumps(doc)


def test_alignment_against_hand_computed_values() -> None:
    al = alignment(_readout(_ATT), _data(), np.array([0, 1, 1]))
    g, r = al.overall["genre"], al.overall["repeat"]
    # genre (multi-label): row0 top1 Drama in {Comedy, Drama} yes; row1 Anime not in {Comedy} but top-3 is;
    # row2 has no genre (PAD) -> skipped. Chance: Comedy is in both labelled rows.
    assert (g.n, g.aligned, g.aligned_top3, g.baseline) == (2, 1, 2, 2)
    assert al.multi_label == {"genre": True, "repeat": False}
    assert al.baseline_label["genre"] == "Comedy"
    # repeat (single-label): row0 new vs repeat -> no (top-3 yes); row1 repeat vs repeat -> yes; row2 PAD skipped
    assert (r.n, r.aligned, r.aligned_top3, r.baseline) == (2, 1, 2, 2)
    assert al.mean_rate() == pytest.approx(0.5)
    np.testing.assert_array_equal(al.row_aligned["genre"], [1, 0, -1])
    np.testing.assert_array_equal(al.row_aligned["repeat"], [0, 1, -1])
    c0, c1 = al.per_cluster[0], al.per_cluster[1]
    assert (c0["genre"].n, c0["genre"].aligned, c0["repeat"].aligned) == (1, 1, 0)
    assert (c1["genre"].n, c1["genre"].aligned, c1["repeat"].n, c1["repeat"].aligned) == (1, 0, 1, 1)
    # primary heads: row0 genre (aligned), row1 genre (not), row2 repeat (no label) -> 1 of 2
    assert al.primary is not None and (al.primary.n, al.primary.aligned) == (2, 1)
    assert (al.primary_per_cluster[1].n, al.primary_per_cluster[1].aligned) == (1, 0)
    json.dumps(al.to_json())


def test_alignment_without_attention_or_clusters() -> None:
    al = alignment(_readout(None), _data(), None)
    assert al.primary is None and al.per_cluster == {}
    assert al.overall["repeat"].rate == pytest.approx(0.5)


def _clusters(labels: list[int], distance: list[float]) -> ClusterResult:
    lab = np.asarray(labels, dtype=np.int64)
    k = int(lab.max()) + 1
    return ClusterResult(
        k=k, labels=lab, centers=np.zeros((k, 4)), distance_to_center=np.asarray(distance, dtype=np.float64),
        z_std=np.zeros((lab.size, 4)), mean=np.zeros(4), scale=np.ones(4), silhouette={}, best_k=None,
        inertia=0.0, seed=0, n_init=1,
    )


def test_cluster_profiles_count_labels() -> None:
    data = _data()
    profiles = cluster_profiles(_readout(_ATT), data, _clusters([0, 1, 0], [0.5, 0.1, 0.2]), top=5, history=2)
    p0, p1 = profiles
    assert (p0.size, p1.size) == (2, 1) and p0.share == pytest.approx(2 / 3)
    # history = the 2 events before each target: u0 events 1, 2; u1 events 0, 1; u2 events 0, 1
    assert (p0.history_events, p1.history_events) == (4, 2)
    genre0 = {x.label: x for x in p0.attributes["genre"]}
    assert genre0["Drama"].count == 3  # u0 e1, u2 e0, u2 e1 (Drama twice in one event counts once)
    assert genre0["Anime"].count == 1
    assert genre0["Drama"].share == pytest.approx(0.75)
    assert genre0["Drama"].lift == pytest.approx(0.75 / 0.5)  # over all users: 3 of 6 events
    assert [x.label for x in p0.attributes["genre"]] == ["Drama", "Anime"]
    genre1 = {x.label: (x.count, x.share) for x in p1.attributes["genre"]}
    assert genre1 == {"Comedy": (2, 1.0), "Anime": (1, 0.5)}
    fmt0 = {x.label: x.count for x in p0.attributes["format"]}
    assert fmt0 == {"movie": 3, "show": 1}  # input-only attributes are profiled too
    assert [(it.item_id, it.count, it.users) for it in p0.top_items] == [("a", 3, 2), ("b", 1, 1)]
    assert p0.top_items[0].name == "a · Alpha"
    assert p0.nearest_users == ("u2", "u0")  # by distance to the centre
    assert p0.nearest_rows == (2, 0)
    # predicted intents: top-1 genre of rows 0 and 2 is Drama; attention means
    assert p0.intents[0].label == "Drama" and p0.intents[0].share == 1.0
    assert p0.attention["genre"] == pytest.approx((0.7 + 0.2) / 2)
    assert p0.primary_shares == {"genre": 0.5, "repeat": 0.5}
    assert p0.description and p1.description
    json.dumps([p.to_json() for p in profiles])


def test_user_table_columns() -> None:
    data = _data()
    ro = _readout(_ATT)
    cl = _clusters([0, 1, 0], [0.5, 0.1, 0.2])
    pr = primary_intents(ro)
    al = alignment(ro, data, cl.labels)
    xy = np.arange(6, dtype=np.float64).reshape(3, 2)
    table = user_table(ro, data, cl, pr, embedding_2d=xy, alignment=al)
    assert table["user_id"] == ["u0", "u1", "u2"]
    assert table["primary_intent"] == ["genre", "genre", "repeat"]
    assert table["top_genre"] == ["Drama", "Anime", "Drama"]
    np.testing.assert_allclose(table["top_genre_prob"], [0.3, 0.4, 0.7], rtol=1e-6)
    assert table["actual_genre"] == ["Comedy|Drama", "Comedy", ""]
    assert table["actual_repeat"] == ["repeat", "repeat", ""]
    np.testing.assert_array_equal(table["aligned_repeat"], [0, 1, -1])
    np.testing.assert_allclose(table["attention_repeat"], _ATT[:, 1])
    emb = table["intent_embedding"]
    assert isinstance(emb, np.ndarray) and emb.shape == (3, 4) and emb.dtype == np.float32
    np.testing.assert_allclose(table["tsne_y"], [1, 3, 5])
    assert table["top_items"] == [["b", "a"], ["a", "c"], ["d"]]
    assert all(len(v) == 3 for v in table.values())
    bare = user_table(_readout(None), data, None, None)
    assert "cluster" not in bare and "attention_genre" not in bare and "intent_embedding" not in bare

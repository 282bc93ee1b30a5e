"""Untrained heuristics: hand-computed scores, training-only fitting, and the shared ranking path."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from intentrec.config import ModelConfig, load_config
from intentrec.errors import ConfigError
from intentrec.evaluate.evaluator import evaluate_popularity, evaluate_scores
from intentrec.evaluate.heuristics import (
    KNN_TIE_EPS,
    HeuristicScorer,
    ItemKNNScorer,
    PopularityScorer,
    RecentPopularityScorer,
    SessionKNNScorer,
    evaluate_heuristic,
    fit_heuristic,
)
from intentrec.structs import AttributeSpec, DataSpec, EncodedSequences, Split
from intentrec.vocab import ItemVocab, LabelVocab

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0
ARCHITECTURES = ("popularity", "recent_popularity", "item_knn", "session_knn")

Event = tuple[int, int, float]
"""(item index, session number, timestamp) of one event."""


def _data(
    users: list[list[Event]],
    train_len: list[int],
    test_targets: list[tuple[int, int]],
    *,
    n_items: int = 10,
    timed: bool = True,
) -> EncodedSequences:
    """Tiny encoded data: one single-label intent ``act`` = item % 2 + 2."""
    lengths = [len(u) for u in users]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = [e for u in users for e in u]
    items = np.array([e[0] for e in flat], dtype=np.int64)
    n = items.size
    spec = DataSpec(
        n_items=n_items,
        attributes=(AttributeSpec("act", 4, False, True, True),),
        numeric=(),
        timed=timed,
        exclude_seen_default=True,
    )
    return EncodedSequences(
        user_ids=tuple(f"u{i}" for i in range(len(users))),
        offsets=offsets,
        item_idx=items,
        timestamps=np.array([e[2] for e in flat], dtype=np.float64),
        duration=np.ones(n, dtype=np.float32),
        session=np.array([e[1] for e in flat], dtype=np.int64),
        categorical={"act": (items % 2 + 2).astype(np.int64)},
        numeric=np.zeros((n, 0), dtype=np.float32),
        split=Split(
            train_len=np.asarray(train_len, dtype=np.int64),
            val_targets=np.zeros((0, 2), dtype=np.int64),
            test_targets=np.asarray(test_targets, dtype=np.int64).reshape(-1, 2),
            protocol="temporal",
        ),
        spec=spec,
        item_vocab=ItemVocab(tuple(str(i) for i in range(2, n_items))),
        label_vocabs={"act": LabelVocab.from_labels("act", ["even", "odd"])},
    )


def _cfg(architecture: str, **overrides: object) -> ModelConfig:
    return ModelConfig.model_validate({"architecture": architecture, **overrides})


def _state(scorer: object) -> dict[str, object]:
    """Every fitted field of a scorer, sparse matrices densified (for equality checks)."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(scorer):  # type: ignore[arg-type]
        value = getattr(scorer, f.name)
        out[f.name] = value.toarray() if sp.issparse(value) else value
    return out


def _assert_same_state(a: object, b: object) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], np.ndarray):
            np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
        else:
            assert sa[key] == sb[key], key


# ------------------------------------------------------------------------------------------------------------
# item_knn: three training sessions {2, 3}, {2, 3, 4} (user 0) and {3, 4} (user 1)
# ------------------------------------------------------------------------------------------------------------

ITEM_KNN_USERS: list[list[Event]] = [
    [(2, 0, 0.0), (3, 0, 60.0), (2, 1, DAY), (3, 1, DAY + 60), (4, 1, DAY + 120)],
    [(3, 0, 0.5 * DAY), (4, 0, 0.5 * DAY + 60), (2, 1, 3 * DAY), (4, 1, 3 * DAY + 60), (5, 1, 3 * DAY + 120)],
]


def _item_knn_data() -> EncodedSequences:
    # user 1's events 2.. are test-period events; the target is item 5 after history [3, 4, 2, 4]
    return _data(ITEM_KNN_USERS, train_len=[5, 2], test_targets=[(1, 4)])


def test_item_knn_similarity_by_hand() -> None:
    data = _item_knn_data()
    scorer = fit_heuristic(_cfg("item_knn", knn_neighbors=5, knn_history=2), data)
    assert isinstance(scorer, ItemKNNScorer) and scorer.units == "sessions"
    # cnt(2) = 2, cnt(3) = 3, cnt(4) = 2 sessions; co(2,3) = 2, co(2,4) = 1, co(3,4) = 2
    c23, c24, c34 = 2 / math.sqrt(6), 1 / 2, 2 / math.sqrt(6)
    expected = np.zeros((10, 10))
    expected[2, 3] = expected[3, 2] = c23
    expected[2, 4] = expected[4, 2] = c24
    expected[3, 4] = expected[4, 3] = c34
    np.testing.assert_allclose(scorer.similarity.toarray(), expected)


def test_item_knn_pruning_keeps_top_k_with_popularity_tie_break() -> None:
    scorer = fit_heuristic(_cfg("item_knn", knn_neighbors=1, knn_history=2), _item_knn_data())
    assert isinstance(scorer, ItemKNNScorer)
    sim = scorer.similarity.toarray()
    # row 2: cos(2,3) = 0.816 > cos(2,4) = 0.5; row 3: cos(3,2) = cos(3,4), equally popular -> lower index 2
    assert np.flatnonzero(sim[2]).tolist() == [3]
    assert np.flatnonzero(sim[3]).tolist() == [2]
    assert np.flatnonzero(sim[4]).tolist() == [3]


def test_item_knn_scores_by_hand() -> None:
    data = _item_knn_data()
    scorer = fit_heuristic(_cfg("item_knn", knn_neighbors=5, knn_history=2), data)
    scores = scorer.score(data, data.split.test_targets)[0].numpy()  # history [.., 2, 4]: 4 weighs 1, 2 weighs 1/2
    assert scores[0] == scores[1] == -np.inf  # PAD / UNK
    assert scores[2] == pytest.approx(0.5, abs=1e-8)  # S[4, 2]
    assert scores[3] == pytest.approx(2 / math.sqrt(6) + 0.5 * 2 / math.sqrt(6), abs=1e-8)  # S[4, 3] + S[2, 3] / 2
    assert scores[4] == pytest.approx(0.5 * 0.5, abs=1e-8)  # S[2, 4] / 2
    # items without similarity are ordered by popularity through the tiny tie-break only
    assert 0.0 == scores[5] == scores[6]
    assert scores[3] - (2 / math.sqrt(6)) * 1.5 == pytest.approx(KNN_TIE_EPS * 1.0, rel=1e-3)  # the most popular item


def test_item_knn_falls_back_to_sliding_windows_when_sessions_are_whole_histories() -> None:
    # untimed data, one session per user: pairs within knn_history = 2 consecutive training events, once per user
    users: list[list[Event]] = [
        [(2, 0, 0.0), (3, 0, 1.0), (2, 0, 2.0), (3, 0, 3.0), (4, 0, 4.0), (5, 0, 5.0)],
        [(2, 0, 0.0), (3, 0, 1.0)],
    ]
    data = _data(users, train_len=[6, 2], test_targets=[], timed=False)
    scorer = fit_heuristic(_cfg("item_knn", knn_history=2), data)
    assert isinstance(scorer, ItemKNNScorer) and scorer.units == "windows"
    sim = scorer.similarity.toarray()
    # co(2,3) = 2 users (user 0's three adjacent (2,3) pairs count once), co(3,4) = co(4,5) = 1
    # cnt = users holding the item: 2 -> 2, 3 -> 2, 4 -> 1, 5 -> 1
    assert sim[2, 3] == pytest.approx(1.0) and sim[3, 2] == pytest.approx(1.0)
    assert sim[3, 4] == pytest.approx(1 / math.sqrt(2))
    assert sim[4, 5] == pytest.approx(1.0)
    assert sim[2, 4] == sim[2, 5] == sim[3, 5] == 0.0  # never within 2 consecutive events
    assert np.diag(sim).tolist() == [0.0] * 10
    # a window wider than every history is whole-history co-occurrence
    wide = fit_heuristic(_cfg("item_knn", knn_history=50), data)
    assert isinstance(wide, ItemKNNScorer)
    assert wide.similarity.toarray()[2, 5] == pytest.approx(1 / math.sqrt(2))


# ------------------------------------------------------------------------------------------------------------
# session_knn
# ------------------------------------------------------------------------------------------------------------

SESSION_USERS: list[list[Event]] = [
    [(2, 0, 0.0), (3, 0, 60.0), (4, 0, 120.0)],  # training session A = {2, 3, 4}
    [(5, 0, 0.0), (6, 0, 60.0)],  # training session B = {5, 6}: shares nothing
    [(3, 0, 10.0), (7, 0, 70.0)],  # training session C = {3, 7}
    [(8, 0, 0.0), (2, 1, DAY), (3, 1, DAY + 60), (4, 1, DAY + 120)],  # test: current session [2, 3], target 4
]


def _session_data() -> EncodedSequences:
    return _data(SESSION_USERS, train_len=[3, 2, 2, 1], test_targets=[(3, 3)])


def test_session_knn_scores_by_hand() -> None:
    data = _session_data()
    scorer = fit_heuristic(_cfg("session_knn", knn_neighbors=5, knn_history=10), data)
    assert isinstance(scorer, SessionKNNScorer)
    scores = scorer.score(data, data.split.test_targets)[0].numpy()
    # current session [2, 3] (item 8 is in the previous session): weights 2 -> 1/2, 3 -> 2/2
    sim_a = (0.5 + 1.0) / math.sqrt(3)
    sim_c = 1.0 / math.sqrt(2)
    for item, expected in {2: sim_a, 3: sim_a + sim_c, 4: sim_a, 5: 0.0, 6: 0.0, 7: sim_c, 8: 0.0}.items():
        assert scores[item] == pytest.approx(expected, abs=1e-8), item


def test_session_knn_picks_the_sharing_neighbour_and_ranks_its_other_item_first() -> None:
    data = _session_data()
    scorer = fit_heuristic(_cfg("session_knn", knn_neighbors=1, knn_history=10), data)
    scores = scorer.score(data, data.split.test_targets)[0].numpy()
    assert scores[7] < 1e-6  # C is not among the k = 1 neighbours
    report = evaluate_heuristic(scorer, data, data.split.test_targets, exclude_seen=True, ks=(1,), intent_topk=1)
    assert report.per_target["rank"].tolist() == [1]  # 2, 3 are seen: A's other item, 4, comes first


def test_session_knn_never_uses_the_current_session_as_its_own_neighbour() -> None:
    # user 1's current session starts in training ({5}) and continues in the test period ([5, 2] -> target 3)
    users: list[list[Event]] = [
        [(2, 0, 0.0), (3, 0, 60.0)],
        [(5, 0, 100.0), (2, 0, 160.0), (3, 0, 220.0)],
    ]
    data = _data(users, train_len=[2, 1], test_targets=[(1, 2)])
    scorer = fit_heuristic(_cfg("session_knn"), data)
    scores = scorer.score(data, data.split.test_targets)[0].numpy()
    assert scores[5] < 1e-6  # only the own training session {5} contains item 5
    assert scores[3] == pytest.approx(1.0 / math.sqrt(2), abs=1e-8)  # weight of 2 is 2/2, |{2, 3}| = 2


# ------------------------------------------------------------------------------------------------------------
# recent_popularity
# ------------------------------------------------------------------------------------------------------------


def test_recent_popularity_counts_only_the_window() -> None:
    users: list[list[Event]] = [
        [(2, 0, 0.0), (2, 1, 1 * DAY), (2, 2, 2 * DAY), (4, 3, 2 * DAY), (3, 4, 9 * DAY), (3, 5, 10 * DAY)],
        [(4, 0, 9.5 * DAY), (5, 1, 40 * DAY)],  # the last event is a test-period event
    ]
    data = _data(users, train_len=[6, 1], test_targets=[(1, 1)])
    scorer = fit_heuristic(_cfg("recent_popularity", recent_window="2d"), data)
    assert isinstance(scorer, RecentPopularityScorer)
    # latest training time = 10 d: the window [8 d, 10 d] holds 3, 3, 4 (not 5 at 40 d, not 2 or the early 4)
    assert scorer.recent[2:6].tolist() == [0.0, 2.0, 1.0, 0.0]
    scores = scorer.score(data, data.split.test_targets)[0].numpy()
    # recent + overall / (max overall + 1): overall counts 2 -> 3, 3 -> 2, 4 -> 2, 5 -> 0
    assert scores[2:6].tolist() == pytest.approx([3 / 4, 2 + 2 / 4, 1 + 2 / 4, 0.0])
    assert np.argsort(-scores[2:6]).tolist() == [1, 2, 0, 3]


def test_recent_popularity_untimed_counts_each_users_last_events() -> None:
    users: list[list[Event]] = [[(2, 0, 0.0), (2, 0, 1.0), (3, 0, 2.0)], [(4, 0, 0.0), (5, 0, 1.0), (2, 0, 2.0)]]
    data = _data(users, train_len=[3, 2], test_targets=[], timed=False)
    scorer = fit_heuristic(_cfg("recent_popularity", knn_history=1), data)
    assert isinstance(scorer, RecentPopularityScorer)
    assert scorer.recent[2:6].tolist() == [0.0, 1.0, 0.0, 1.0]  # user 0's last training event 3, user 1's 5


# ------------------------------------------------------------------------------------------------------------
# the leakage contract and the shared ranking path
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_test_period_events_never_change_the_fitted_state(architecture: str) -> None:
    data = _session_data()
    cfg = _cfg(architecture, knn_neighbors=2, knn_history=3)
    fitted = fit_heuristic(cfg, data)
    assert isinstance(fitted, HeuristicScorer) and fitted.name == architecture
    # user 3's rows 1.. are test-period events: change their items, sessions and times
    start = int(data.offsets[3]) + 1
    items, session, times = data.item_idx.copy(), data.session.copy(), data.timestamps.copy()
    items[start:] = [9, 9, 7]
    session[start:] = [5, 5, 6]
    times[start:] += 300 * DAY
    changed = dataclasses.replace(data, item_idx=items, session=session, timestamps=times)
    _assert_same_state(fitted, fit_heuristic(cfg, changed))
    # ... and a training event does change it
    items = data.item_idx.copy()
    items[0] = 9
    refit = _state(fit_heuristic(cfg, dataclasses.replace(data, item_idx=items)))
    assert any(not np.array_equal(v, refit[k]) for k, v in _state(fitted).items() if isinstance(v, np.ndarray))


def test_fit_heuristic_rejects_trained_architectures() -> None:
    with pytest.raises(ConfigError, match="not an untrained heuristic"):
        fit_heuristic(_cfg("sasrec"), _session_data())


def test_popularity_heuristic_equals_evaluate_popularity() -> None:
    data = _item_knn_data()
    targets = np.array([[1, 2], [1, 3], [1, 4]])
    pop = evaluate_popularity(data, targets, exclude_seen=False, ks=(1, 3), intent_topk=1)
    # training counts: 2 -> 2, 3 -> 3, 4 -> 2, others 0; ties count against the model
    # target 2: 3 is higher, 4 ties -> 3; target 4: likewise 3; target 5: 2, 3, 4 higher, 6..9 tie -> 8
    assert pop.per_target["rank"].tolist() == [3, 3, 8]
    heur = evaluate_heuristic(PopularityScorer.fit(data), data, targets, exclude_seen=False, ks=(1, 3), intent_topk=1)
    assert heur.to_json() == pop.to_json()
    for key in ("rank", "ndcg@10", "hr@10", "mrr"):
        np.testing.assert_array_equal(heur.per_target[key], pop.per_target[key])
    # majority training label: act = item % 2 + 2, training items 2, 3, 2, 3, 4, 3, 4 -> even (2) wins 4:3
    assert pop.intents["act"]["accuracy"] == pytest.approx(2 / 3)  # targets 2, 4 even; 5 odd


def test_seen_filter_and_target_order() -> None:
    data = _item_knn_data()
    targets = np.array([[1, 2], [1, 3], [1, 4]])
    scorer = fit_heuristic(_cfg("item_knn", knn_history=2), data)
    forward = evaluate_heuristic(scorer, data, targets, exclude_seen=True, ks=(10,), intent_topk=1, batch_size=2)
    backward = evaluate_heuristic(scorer, data, targets[::-1], exclude_seen=True, ks=(10,), intent_topk=1)
    for key in ("rank", "ndcg@10", "hr@10", "mrr"):
        np.testing.assert_array_equal(forward.per_target[key], backward.per_target[key][::-1])
    # target 2 after history [3, 4]: seen 3, 4 removed; 2 has the only positive score -> rank 1
    assert forward.per_target["rank"].tolist()[0] == 1


def test_evaluate_scores_checks_the_score_shape() -> None:
    data = _item_knn_data()
    with pytest.raises(ValueError, match=r"\(P, I\)"):
        evaluate_scores(lambda chunk: torch.zeros(chunk.shape[0], 3), data, data.split.test_targets,
                        exclude_seen=False, ks=(10,), intent_topk=1)


def test_knn_heuristics_beat_random_ranking_on_movielens() -> None:
    from intentrec.data import prepare

    cfg = load_config(REPO / "configs" / "tiny.yaml", ["data.cache_dir=null"])
    data = prepare(cfg.data)
    targets = data.split.test_targets
    kwargs = {"exclude_seen": data.spec.exclude_seen_default, "ks": (10,), "intent_topk": 3}
    gen = torch.Generator().manual_seed(0)
    random = evaluate_scores(
        lambda chunk: torch.rand(chunk.shape[0], data.spec.n_items, generator=gen), data, targets, **kwargs
    )
    for architecture in ("item_knn", "session_knn"):
        scorer = fit_heuristic(cfg.model.model_copy(update={"architecture": architecture}), data)
        report = evaluate_heuristic(scorer, data, targets, **kwargs)
        assert report.n_targets == targets.shape[0]
        assert report.item["ndcg@10"] > max(5 * random.item["ndcg@10"], 0.01), architecture


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_scores_are_causal_a_later_event_never_changes_an_earlier_prediction(architecture: str) -> None:
    data = _session_data()
    scorer = fit_heuristic(_cfg(architecture, knn_neighbors=2, knn_history=3), data)
    user = 3
    p = int(data.offsets[user + 1] - data.offsets[user]) - 2  # a target with one event after it
    target = np.array([[user, p]])
    before = scorer.score(data, target)
    items, session = data.item_idx.copy(), data.session.copy()
    row = int(data.offsets[user]) + p  # the target itself and the event after it
    items[row : row + 2], session[row : row + 2] = [8, 9], [7, 7]
    after = scorer.score(dataclasses.replace(data, item_idx=items, session=session), target)
    torch.testing.assert_close(before, after)

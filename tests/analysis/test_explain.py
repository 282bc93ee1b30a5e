"""``intentrec explain``: intents, attention, window and item matches for a run or a bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intentrec import analysis_workflows as aw
from intentrec.cli import app
from intentrec.errors import ConfigError

RATINGS = Path(__file__).resolve().parents[2] / "src" / "intentrec" / "resources" / "ml-latest-small" / "ratings.csv"


@pytest.fixture(scope="module")
def tiny_source(tiny_run: Path) -> aw.ModelSource:
    return aw.load_source(tiny_run)


@pytest.fixture(scope="module")
def sim_source(sim_run: Path) -> aw.ModelSource:
    return aw.load_source(sim_run)


def _user(src: aw.ModelSource) -> str:
    data = src.data
    assert data is not None
    lengths = np.diff(data.offsets)
    return data.user_ids[int(np.argmax(lengths))]


def test_explain_run_user_has_every_head_attention_and_window(tiny_source: aw.ModelSource) -> None:
    user = _user(tiny_source)
    expl = aw.explain(tiny_source, user_id=user, k=7)
    names = [i.name for i in expl.intents]
    assert names == ["genre", "recency"]
    weights = np.array([i.attention for i in expl.intents], dtype=float)
    assert np.isclose(weights.sum(), 1.0, atol=1e-5)
    assert expl.primary_intent == names[int(np.argmax(weights))]
    assert len(expl.items) == 7 and [i.rank for i in expl.items] == list(range(1, 8))
    assert all(a.score >= b.score for a, b in zip(expl.items, expl.items[1:], strict=False))
    w = expl.window
    assert w.used and 1 <= w.events <= w.input_events <= tiny_source.cfg.model.max_len
    assert expl.user_id == user and expl.n_events > 0
    for view in expl.intents:  # probabilities sorted and valid
        probs = [p for _, p in view.labels]
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    doc = json.loads(json.dumps(expl.to_json()))
    assert doc["primary_intent"] == expl.primary_intent and len(doc["items"]) == 7
    text = expl.to_text()
    assert f"Primary intent: {expl.primary_intent}" in text and "short-term window (1w)" in text


def test_item_matches_are_the_items_own_labels_among_the_top_predictions(sim_source: aw.ModelSource) -> None:
    expl = aw.explain(sim_source, user_id=_user(sim_source), k=10, intent_top=3)
    live, vocabs = sim_source.live, sim_source.label_vocabs
    top = {i.name: {lab for lab, _ in i.labels} for i in expl.intents}
    seen_any_match = False
    for item in expl.items:
        ix = sim_source.item_vocab.encode(item.item_id)
        for head in ("genre", "format"):  # item-level attributes: the item's own label from the item table
            code = live.item_codes[head][ix]
            assert item.labels[head] == (vocabs[head].decode(int(code)),)
        for head, label, prob in item.matches:
            assert label in item.labels[head] and label in top[head]
            assert prob == pytest.approx(dict(next(i for i in expl.intents if i.name == head).labels)[label])
            seen_any_match = True
        assert "action" in item.labels  # the repeat head is item-determinable from the history
    assert seen_any_match


def test_bundle_items_match_the_run(tiny_source: aw.ModelSource, tiny_bundle: Path) -> None:
    data = tiny_source.data
    assert data is not None
    items = [data.item_vocab.decode(int(i)) for i in data.item_idx[data.user_slice(0)][:6]]
    from_run = aw.explain(tiny_source, items=items, k=10)
    from_bundle = aw.explain(tiny_bundle, items=items, k=10, at=float(data.timestamps.max()))
    assert [i.item_id for i in from_bundle.items] == [i.item_id for i in from_run.items]
    for a, b in zip(from_run.intents, from_bundle.intents, strict=True):
        assert a.name == b.name and a.attention == pytest.approx(b.attention, abs=1e-5)
        assert [lab for lab, _ in a.labels] == [lab for lab, _ in b.labels]
    for a_item, b_item in zip(from_run.items, from_bundle.items, strict=True):
        assert [m[:2] for m in a_item.matches] == [m[:2] for m in b_item.matches]
        assert [m[2] for m in a_item.matches] == pytest.approx([m[2] for m in b_item.matches], abs=1e-4)


def test_bundle_user_from_an_events_file_matches_the_run(tiny_source: aw.ModelSource, tiny_bundle: Path) -> None:
    user = _user(tiny_source)
    from_run = aw.explain(tiny_source, user_id=user, k=5)
    cols = {"user_id": "userId", "item_id": "movieId"}
    from_bundle = aw.explain(tiny_bundle, user_id=user, events=RATINGS, columns=cols, k=5)
    assert [i.item_id for i in from_bundle.items] == [i.item_id for i in from_run.items]
    assert from_bundle.primary_intent == from_run.primary_intent
    assert from_bundle.window.events == from_run.window.events


def test_bundle_user_needs_events_and_errors_are_clear(tiny_bundle: Path, tiny_source: aw.ModelSource) -> None:
    with pytest.raises(ConfigError, match="--events"):
        aw.explain(tiny_bundle, user_id="1")
    with pytest.raises(ConfigError, match="exactly one"):
        aw.explain(tiny_source, user_id="1", items=["1"])
    with pytest.raises(ConfigError, match="has no events"):
        aw.explain(tiny_bundle, user_id="no-such-user", events=RATINGS,
                   columns={"user_id": "userId", "item_id": "movieId"})
    with pytest.raises(ConfigError, match="known"):
        aw.explain(tiny_bundle, items=["not-an-item"])
    with pytest.raises(ConfigError, match="ISO 8601"):
        aw.explain(tiny_bundle, items=["1"], at="yesterday-ish")


def test_cli_explain_text_and_json(tiny_run: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["explain", str(tiny_run), "--items", "1,2,3", "--k", "3", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert len(doc["items"]) == 3 and {i["name"] for i in doc["intents"]} == {"genre", "recency"}
    res = runner.invoke(app, ["explain", str(tiny_run), "--user", "1", "--k", "3"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "Primary intent:" in text and "Top items and the predicted intents they match" in text
    res = runner.invoke(app, ["explain", str(tiny_run)])
    assert res.exit_code != 0 and "exactly one" in " ".join(res.output.split())

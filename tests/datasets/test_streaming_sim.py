"""The streaming simulator: determinism, schema, behaviour, oracle ceilings, files, and the data-pipeline adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from intentrec.config import SourceConfig, load_config
from intentrec.data import adapters
from intentrec.data.labels import REPEAT_LABELS, recency_labels
from intentrec.data.pipeline import prepare
from intentrec.datasets import streaming_sim
from intentrec.datasets.streaming_sim import (
    SIM_INTENTS,
    TRUE_INTENTS,
    SimConfig,
    SimulatedLog,
    intent_ceilings,
    item_ceiling,
    rank_metrics,
    read_simulation,
    simulate,
    write_simulation,
)
from intentrec.errors import ConfigError, DataError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "streaming_sim.yaml"


@pytest.fixture(scope="module")
def log() -> SimulatedLog:
    return simulate(SimConfig.preset("tiny"))


@pytest.fixture(scope="module")
def joined(log: SimulatedLog) -> pl.DataFrame:
    return log.events.join(
        log.items.select("item_id", "show_id", "episode", "runtime", "format", "genre"), on="item_id", how="left"
    )


# ----------------------------------------------------------------------------------------------------------
# generator
# ----------------------------------------------------------------------------------------------------------


def test_same_seed_same_log_other_seed_other_log(log: SimulatedLog) -> None:
    calls: list[tuple[int, int]] = []
    again = simulate(SimConfig.preset("tiny"), progress=lambda done, total: calls.append((done, total)))
    assert again.events.equals(log.events) and again.items.equals(log.items)
    assert calls and calls[-1] == (50, 50)
    other = simulate(SimConfig.preset("tiny", seed=1))
    assert not other.events.equals(log.events)
    assert SimConfig.from_name("tiny@seed=1") == other.config
    assert other.config.label == "tiny@seed=1" and log.config.label == "tiny"


def test_preset_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown streaming_sim preset 'huge'"):
        SimConfig.preset("huge")
    with pytest.raises(ConfigError, match="small@seed=3"):
        SimConfig.from_name("small@3")


def test_tiny_size_and_schema(log: SimulatedLog) -> None:
    events, items = log.events, log.items
    assert 50 == events["user_id"].n_unique() and 2_000 <= events.height <= 10_000
    assert items["show_id"].n_unique() == 200
    assert events.schema["user_id"] == pl.String and events.schema["item_id"] == pl.String
    assert events.schema["timestamp"] == pl.Int64 and events.schema["duration"] == pl.Float64
    for column in ("session_id", "true_intent", *(f"label_{n}" for n in SIM_INTENTS), *(f"oracle_{n}" for n in SIM_INTENTS)):
        assert events.schema[column] == pl.String, column
    for name in SIM_INTENTS:
        assert events.schema[f"oracle_{name}_p"] == pl.Float64
        assert events[f"oracle_{name}_p"].is_between(0.0, 1.0).all()
    assert events.schema["oracle_item_rank"] == pl.Int64 and (events["oracle_item_rank"] >= 1).all()
    assert set(events["true_intent"].unique()) == set(TRUE_INTENTS)
    assert events["item_id"].is_in(items["item_id"].implode()).all()
    assert events["timestamp"].min() >= 1_704_067_200  # 2024-01-01 UTC
    assert (events["duration"] > 0).all()
    assert items.schema["release_date"] == pl.Date and items.schema["episode"] == pl.Int64
    movies = items.filter(pl.col("format") == "movie")
    assert (movies["show_id"] == movies["item_id"]).all() and (movies["episode"] == 1).all()
    shows = items.filter(pl.col("format") == "show")
    assert shows.group_by("show_id").agg(pl.col("release_date").n_unique())["release_date"].max() == 1
    assert items.filter(pl.col("release_date") >= pl.date(2024, 1, 1)).height > 0  # new releases in the period
    assert set(items["format"].unique()) == {"movie", "show"}


def test_timestamps_strictly_increase_per_user(log: SimulatedLog) -> None:
    steps = log.events.select(pl.col("timestamp").diff().over("user_id").alias("d"))["d"].drop_nulls()
    assert (steps > 0).all()
    assert log.events.select(pl.col("user_id").ne(pl.col("user_id").shift(1)).sum()).item() == 49  # grouped


def test_continue_sessions_play_the_next_episode(joined: pl.DataFrame) -> None:
    prev = joined.with_columns(pl.col("episode").shift(1).over(["user_id", "show_id"]).alias("prev"))
    cont = prev.filter(pl.col("true_intent") == "continue")
    assert cont.height > 100
    assert cont["format"].eq("show").all()
    assert (cont["episode"] == cont["prev"] + 1).all()  # never the first play of a show, always in order
    assert cont["label_action"].eq("repeat").all()
    discover = prev.filter(pl.col("true_intent") == "discover")
    assert discover["label_action"].eq("new").mean() > 0.95  # only titles new to the user (bar exhaustion)


def test_new_release_sessions_watch_recent_titles(log: SimulatedLog) -> None:
    recent = log.events.group_by("true_intent").agg(
        pl.col("label_recency").is_in(["<=7d", "7d-30d"]).mean().alias("recent")
    )
    share = dict(zip(recent["true_intent"].to_list(), recent["recent"].to_list(), strict=True))
    assert share["new_release"] > 2 * max(share["discover"], share["genre_mood"])


def test_better_fitting_titles_are_watched_longer(joined: pl.DataFrame) -> None:
    fraction = (joined["duration"] / joined["runtime"]).to_numpy()
    assert 0.0 < fraction.min() and fraction.max() <= 1.0 + 1e-9
    assert np.corrcoef(joined["fit"].to_numpy(), fraction)[0, 1] > 0.3


def test_oracle_beats_the_majority_label_and_is_calibrated(log: SimulatedLog) -> None:
    events = log.events
    ceilings = intent_ceilings(events, events["user_id"], events["timestamp"])
    for name in SIM_INTENTS:
        counts = events[f"label_{name}"].value_counts()
        assert counts.height > 1, name
        majority = counts["count"].max() / events.height
        assert ceilings[f"majority_{name}"] == pytest.approx(majority)
        assert majority < ceilings[name] <= 1.0, name
        # the oracle's probabilities are those of the generator: mean probability ~ accuracy
        assert abs(events[f"oracle_{name}_p"].mean() - ceilings[name]) < 0.03, name
    assert sum(ceilings[f"share_{k}"] for k in TRUE_INTENTS) == pytest.approx(1.0)
    assert all(ceilings[f"share_{k}"] > 0.05 for k in TRUE_INTENTS)


def test_ceilings_on_a_subset_and_unknown_keys(log: SimulatedLog) -> None:
    sub = log.events.filter(pl.col("true_intent") == "continue")
    ceilings = intent_ceilings(log.events, sub["user_id"].to_list(), sub["timestamp"].cast(pl.Float64).to_numpy())
    assert ceilings["share_continue"] == 1.0 and ceilings["action"] == 1.0
    users = [*sub["user_id"].to_list()[:3], "nobody", "u0000"]
    times = [*sub["timestamp"].to_list()[:3], 1.0, 2.0]
    with pytest.raises(DataError, match="2 of 5"):
        intent_ceilings(log.events, users, times)
    with pytest.raises(DataError, match="timestamps"):
        intent_ceilings(log.events, ["u0000"], [1.0, 2.0])
    with pytest.raises(DataError, match="lacks columns"):
        intent_ceilings(log.events.drop("oracle_genre"), ["u0000"], [1.0])


def test_item_oracle_rank_is_the_pick_s_rank_under_the_generator_s_probabilities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recompute every oracle rank by brute force from the probability vectors the generator drew from: picks
    against the session vector with the session's earlier picks removed, a continue session's first episode
    against the in-progress shows' weights, its later episodes rank 1."""
    sim_cls = streaming_sim._Simulator
    checked = {"picks": 0, "continue": 0}
    draw_picks, draw_continue = sim_cls._draw_picks, sim_cls._draw_continue

    def picks(self, rng, users, block, first, pairs, t0, intent, mood, k_pick, rows, ev, pick_p):  # type: ignore[no-untyped-def]
        out = draw_picks(self, rng, users, block, first, pairs, t0, intent, mood, k_pick, rows, ev, pick_p)
        if out is not None:
            w, chosen = out
            for i, row in enumerate(rows):
                for j in np.nonzero(chosen[i] >= 0)[0]:
                    p = w.p[i].copy()
                    p[chosen[i, :j]] = 0.0  # drawn without replacement
                    assert ev.oracle_rank[row, j] == 1 + int((p > p[chosen[i, j]]).sum())
                    checked["picks"] += 1
        return out

    def cont(self, rng, users, block, first, pairs, t0, k_binge, rows, ev):  # type: ignore[no-untyped-def]
        out = draw_continue(self, rng, users, block, first, pairs, t0, k_binge, rows, ev)
        if out is not None:
            for i, row in enumerate(rows):
                mine = out["rr"] == i
                w_show = out["w"][mine][out["tt"][mine] == out["show"][i]]
                assert len(w_show) == 1
                assert ev.oracle_rank[row, 0] == 1 + int((out["w"][mine] > w_show[0]).sum())
                assert (ev.oracle_rank[row, 1:] == 1).all()
                checked["continue"] += 1
        return out

    monkeypatch.setattr(sim_cls, "_draw_picks", picks)
    monkeypatch.setattr(sim_cls, "_draw_continue", cont)
    log = simulate(SimConfig.preset("tiny", seed=2))
    assert checked["picks"] > 1_000 and checked["continue"] > 100
    ranks = log.events.group_by("true_intent").agg(pl.col("oracle_item_rank").max())
    assert dict(zip(*ranks.get_columns(), strict=True))["discover"] > 10  # not all ones


def test_item_ceiling_metrics_by_hand_and_by_intent(log: SimulatedLog) -> None:
    got = rank_metrics(np.array([1, 2, 10, 11]), k=10)
    assert got["hr@10"] == pytest.approx(0.75)
    assert got["ndcg@10"] == pytest.approx((1.0 + 1.0 / np.log2(3.0) + 1.0 / np.log2(11.0)) / 4)
    assert got["mrr"] == pytest.approx((1.0 + 0.5 + 0.1 + 1.0 / 11.0) / 4)
    with pytest.raises(DataError, match="1-based"):
        rank_metrics(np.array([0, 1]))
    events = log.events
    by_intent = {}
    for name in TRUE_INTENTS:
        sub = events.filter(pl.col("true_intent") == name)
        by_intent[name] = item_ceiling(events, sub["user_id"], sub["timestamp"])
        assert by_intent[name] == rank_metrics(sub["oracle_item_rank"].to_numpy())
    # continuing a show is nearly determined by the latent state; the other intents draw from a taste softmax
    assert by_intent["continue"]["ndcg@10"] > 0.8 > by_intent["discover"]["ndcg@10"]
    assert item_ceiling(events, events["user_id"], events["timestamp"], k=1)["hr@1"] == pytest.approx(
        float((events["oracle_item_rank"] == 1).mean()))
    with pytest.raises(DataError, match="k must be"):
        item_ceiling(events, events["user_id"], events["timestamp"], k=0)
    with pytest.raises(DataError, match="lacks columns"):
        item_ceiling(events.drop("oracle_item_rank"), ["u0000"], [1.0])


def test_write_read_round_trip(log: SimulatedLog, tmp_path: Path) -> None:
    folder = write_simulation(log, tmp_path / "sim")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "events.parquet", "items.parquet"]
    back = read_simulation(folder)
    assert back.events.equals(log.events) and back.items.equals(log.items) and back.config == log.config
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "`oracle_<intent>_p`" in readme and '"n_users": 50' in readme and "`30d-365d`" in readme
    (folder / "items.parquet").unlink()
    with pytest.raises(DataError, match=r"items\.parquet"):
        read_simulation(folder)


# ----------------------------------------------------------------------------------------------------------
# data pipeline
# ----------------------------------------------------------------------------------------------------------


def test_label_strings_are_the_pipeline_ones() -> None:
    assert streaming_sim.ACTION_LABELS == REPEAT_LABELS
    for edges in ((7.0, 30.0, 365.0), (365.0, 1095.0, 3650.0), (0.5, 2.0)):
        assert streaming_sim.recency_bucket_labels(edges) == recency_labels(edges)


def test_adapter_reads_a_folder_and_generates_presets(log: SimulatedLog, tmp_path: Path) -> None:
    folder = write_simulation(log, tmp_path / "sim")
    source = SourceConfig(adapter="streaming_sim", path=str(folder))
    assert sorted(p.name for p in adapters.source_files(source)) == ["config.json", "events.parquet", "items.parquet"]
    raw = adapters.load(source)
    assert raw.dataset == "streaming_sim-tiny" and raw.timed and not raw.exclude_seen_default
    assert raw.interactions.height == log.events.height
    assert {"duration", "session_id", "true_intent"} <= set(raw.interactions.columns)
    assert not any(c.startswith(("oracle_", "label_")) for c in raw.interactions.columns)  # no leak of the state
    assert raw.items is not None and raw.items.schema["release_date"] == pl.Float64
    generated = SourceConfig(adapter="streaming_sim", name="tiny@seed=1")
    assert adapters.source_files(generated) == [Path(streaming_sim.__file__)]
    assert adapters.load(generated).dataset == "streaming_sim-tiny@seed=1"
    with pytest.raises(ConfigError, match="unknown streaming_sim preset"):
        adapters.source_files(SourceConfig(adapter="streaming_sim", name="nope"))
    with pytest.raises(DataError, match="not a folder"):
        adapters.load(SourceConfig(adapter="streaming_sim", path=str(folder / "events.parquet")))


def test_pipeline_labels_equal_the_simulated_labels(log: SimulatedLog) -> None:
    cfg = load_config(CONFIG, ["data.source.name=tiny", "data.cache_dir=null"])
    assert cfg.data.source.adapter == "streaming_sim"
    data = prepare(cfg.data)
    assert data.spec.dataset == "streaming_sim-tiny"
    intents = [a.name for a in data.spec.attributes if a.is_intent]
    assert intents == list(SIM_INTENTS)
    counts = np.diff(data.offsets)
    frame = {"user_id": np.repeat(np.array(data.user_ids), counts), "timestamp": data.timestamps.astype(np.int64)}
    for name in intents:
        labels = np.array(data.label_vocabs[name].labels)
        derived = labels[data.categorical[name]]
        assert len(set(derived.tolist())) > 1, name
        frame[f"pipe_{name}"] = derived
    pipe = pl.DataFrame(frame)
    matched = pipe.join(log.events, on=["user_id", "timestamp"], how="inner")
    assert matched.height == pipe.height == log.events.height
    for name in intents:
        assert (matched[f"pipe_{name}"] == matched[f"label_{name}"]).all(), name
    # the ceiling on the pipeline's own keys (e.g. its evaluation targets) matches
    ceilings = intent_ceilings(log.events, pipe["user_id"], data.timestamps)
    assert ceilings["genre"] == pytest.approx((log.events["oracle_genre"] == log.events["label_genre"]).mean())

"""A run interrupted after an epoch and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intentrec import workflows
from intentrec.config import load_config

REPO = Path(__file__).resolve().parents[1]


class _Crash(Exception):
    pass


def _crash_at_epoch(n: int):  # type: ignore[no-untyped-def]
    def log(message: str) -> None:
        if message.startswith(f"epoch {n}:"):
            raise _Crash(message)

    return log


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["raw", "ema"])
def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path: Path, ema_decay: float) -> None:
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["train.epochs=3", "train.patience=5",
                                                       f"data.cache_dir={tmp_path / 'cache'}",
                                                       f"train.ema_decay={ema_decay}"])
    straight = workflows.train(cfg, tmp_path / "straight", progress=False, log=lambda _: None)

    with pytest.raises(_Crash):  # dies during epoch 3, after epoch 2's state was saved
        workflows.train(cfg, tmp_path / "resumed", progress=False, log=_crash_at_epoch(3))
    assert json.loads((tmp_path / "resumed" / "last" / "state.json").read_text())
    resumed = workflows.train(cfg, tmp_path / "resumed", resume=True, progress=False, log=lambda _: None)

    assert resumed.fit.epochs_run == straight.fit.epochs_run == 3
    assert resumed.test["item"] == pytest.approx(straight.test["item"], abs=1e-6)
    for name, metrics in straight.test["intents"].items():
        assert resumed.test["intents"][name] == pytest.approx(metrics, abs=1e-6)
    h1 = [json.loads(x) for x in (tmp_path / "straight" / "history.jsonl").read_text().splitlines()]
    h2 = [json.loads(x) for x in (tmp_path / "resumed" / "history.jsonl").read_text().splitlines()]
    assert [h["loss/total"] for h in h1] == pytest.approx([h["loss/total"] for h in h2], abs=1e-6)
    per_target = np.load(tmp_path / "resumed" / "per_target_test.npz", allow_pickle=False)
    assert per_target["ndcg@10"].shape == per_target["user_id"].shape == per_target["position"].shape


def test_time_budget_stops_after_the_epoch_that_exhausts_it_and_counts_resumed_time(tmp_path: Path) -> None:
    base = ["train.epochs=4", "train.max_steps_per_epoch=2", "train.patience=5", f"data.cache_dir={tmp_path / 'c'}"]
    cfg = load_config(REPO / "configs" / "tiny.yaml", [*base, "train.max_minutes=0.00001"])
    out = workflows.train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    assert out.fit.epochs_run == 1 and out.fit.stop_reason == "time_budget"
    assert out.test["training"]["stop_reason"] == "time_budget" and (tmp_path / "run" / "metrics.json").is_file()
    # resuming with the same tiny budget: the earlier session's time already exhausts it, so one more epoch ends it
    again = workflows.train(cfg, tmp_path / "run", resume=True, progress=False, log=lambda _: None)
    assert again.fit.epochs_run == 2 and again.fit.stop_reason == "time_budget"
    # without a budget the run goes to max epochs
    free = load_config(REPO / "configs" / "tiny.yaml", base)
    assert workflows.train(free, tmp_path / "free", progress=False, log=lambda _: None).fit.stop_reason == "max_epochs"

"""``train.ema_decay``: an exponential moving average of the weights is what is validated, saved and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from intentrec import workflows
from intentrec.config import TrainConfig, load_config
from intentrec.errors import CheckpointError
from intentrec.train.ema import WeightEMA

REPO = Path(__file__).resolve().parents[2]


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.register_buffer("count", torch.tensor(0))


def test_average_matches_the_hand_computed_recursion() -> None:
    net = _Net()
    with torch.no_grad():
        net.lin.weight.copy_(torch.tensor([[1.0, 2.0]]))
    ema = WeightEMA(net, decay=0.5)
    values = [torch.tensor([[3.0, 2.0]]), torch.tensor([[5.0, 10.0]]), torch.tensor([[0.0, 0.0]])]
    expected = torch.tensor([[1.0, 2.0]])
    for t, value in enumerate(values):
        beta = min(0.5, (1 + t) / (10 + t))  # 0.1, 2/11, 0.25: the warm-up is still below the decay
        with torch.no_grad():
            net.lin.weight.copy_(value)
            net.count += 1
        ema.update(net)
        expected = beta * expected + (1 - beta) * value
        assert torch.allclose(ema.shadow["lin.weight"], expected)
    assert ema.shadow["count"].item() == 3  # integer buffers are copied, not averaged
    assert ema.updates == 3
    for _ in range(20):
        ema.update(net)
    assert ema.beta() == 0.5  # after the warm-up the decay itself


def test_swapped_in_restores_the_raw_weights_even_when_the_block_fails() -> None:
    net = _Net()
    ema = WeightEMA(net, decay=0.9)
    with torch.no_grad():
        net.lin.weight.add_(1.0)
    raw = net.lin.weight.detach().clone()
    with ema.swapped_in(net):
        assert torch.equal(net.lin.weight, ema.shadow["lin.weight"])
    assert torch.equal(net.lin.weight, raw)
    with pytest.raises(RuntimeError, match="boom"), ema.swapped_in(net):
        raise RuntimeError("boom")
    assert torch.equal(net.lin.weight, raw)


def test_a_stored_average_of_another_model_is_refused() -> None:
    ema = WeightEMA(_Net(), decay=0.9)
    state = ema.state()
    state["shadow"] = {"lin.weight": torch.zeros(3, 3), "lin.bias": torch.zeros(1), "count": torch.tensor(0)}
    with pytest.raises(ValueError, match="shape"):
        ema.load_state(state)
    with pytest.raises(ValueError, match="does not match"):
        ema.load_state({"updates": 1, "shadow": {"other": torch.zeros(1)}})


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_config_refuses_a_decay_outside_zero_to_one(value: float) -> None:
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=value)


def _cfg(tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return load_config(REPO / "configs" / "tiny.yaml",
                       ["train.epochs=2", "train.patience=5", f"data.cache_dir={tmp_path / 'cache'}", *extra])


def test_the_saved_best_weights_are_the_average_the_validation_scored(tmp_path: Path) -> None:
    out = workflows.train(_cfg(tmp_path, "train.ema_decay=0.95"), tmp_path / "ema", progress=False,
                          log=lambda _: None, evaluate_test=False)
    raw = load_file(tmp_path / "ema" / "last" / "model.safetensors")
    best = load_file(tmp_path / "ema" / "model.safetensors")
    assert any(not torch.equal(raw[k], best[k]) for k in raw if raw[k].is_floating_point())
    # the validation score recorded for the best epoch is the score of the saved (averaged) weights
    history = [json.loads(x) for x in (tmp_path / "ema" / "history.jsonl").read_text().splitlines()]
    recorded = history[out.fit.best_epoch - 1]["val/ndcg@10"]
    assert workflows.evaluate_run(tmp_path / "ema", "validation")["item"]["ndcg@10"] == pytest.approx(recorded,
                                                                                                      abs=1e-6)


def test_resuming_a_state_saved_without_the_average_is_refused(tmp_path: Path) -> None:
    workflows.train(_cfg(tmp_path, "train.epochs=1"), tmp_path / "run", progress=False, log=lambda _: None,
                    evaluate_test=False)
    with pytest.raises(CheckpointError, match="ema_decay"):
        workflows.train(_cfg(tmp_path, "train.ema_decay=0.9"), tmp_path / "run", resume=True, progress=False,
                        log=lambda _: None, evaluate_test=False)

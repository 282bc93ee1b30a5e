"""Training-loop plumbing: device selection and the mixed-precision switch (CUDA paths covered on CPU)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from intentrec.train import loop


def test_resolve_device_falls_back_to_cpu_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loop.resolve_device("auto").type == "cpu"
    with pytest.warns(UserWarning, match="no CUDA device"):
        assert loop.resolve_device("cuda").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loop.resolve_device("auto").type == "cuda"
    assert loop.resolve_device("cpu").type == "cpu"


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")
def test_bf16_autocast_only_on_cuda_and_only_when_enabled() -> None:
    assert isinstance(loop._autocast(torch.device("cpu"), True), nullcontext)
    assert isinstance(loop._autocast(torch.device("cuda"), False), nullcontext)
    ctx = loop._autocast(torch.device("cuda"), True)
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16


def test_seed_everything_makes_torch_and_numpy_repeatable() -> None:
    import numpy as np

    loop.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    loop.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all()

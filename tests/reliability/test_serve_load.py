"""benchmarks/serve_load.py: a short, bounded run (loopback only, about 1 s per level) against the tiny bundle."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_load_benchmark", REPO / "benchmarks" / "serve_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_serve_load_short_run_has_no_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    script = _load_script()
    out = tmp_path / "load"
    status = script.main([
        "--bundle", str(tiny_bundle), "--out", str(out), "--concurrency", "1", "4", "--seconds", "1",
        "--warmup", "0.5", "--bodies", "50",
    ])
    doc = json.loads((out / "results.json").read_text())
    assert status == 0, doc["summary"]["problems"]
    assert doc["summary"]["errors"] == 0 and doc["summary"]["passed"] is True
    assert [level["concurrency"] for level in doc["levels"]] == [1, 4]
    for level in doc["levels"]:
        assert level["requests"] > 0 and level["errors"] == 0 and level["error_kinds"] == {}
        assert 0 < level["p50_ms"] <= level["p90_ms"] <= level["p99_ms"] <= level["max_ms"]
        assert level["rss_start_mb"] > 0 and level["rss_end_mb"] > 0
    assert "| concurrency |" in (out / "results.md").read_text()


def test_bodies_use_the_bundle_items(tiny_bundle: Path) -> None:
    script = _load_script()
    bodies = [json.loads(b) for b in script.make_bodies(tiny_bundle, 40, seed=3)]
    known = set(json.loads((tiny_bundle / "vocabs.json").read_text())["items"]["ids"])
    events = [e for b in bodies for e in b["events"]]
    assert sum(e["item_id"] in known for e in events) / len(events) > 0.9  # mostly catalogue items
    assert len({len(b["events"]) for b in bodies}) > 5  # varying history lengths
    assert all(b["k"] in (5, 10, 20, 50) for b in bodies)
    for b in bodies:
        times = [e["timestamp"] for e in b["events"]]
        assert times == sorted(times)

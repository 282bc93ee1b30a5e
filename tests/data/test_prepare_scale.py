"""benchmarks/prepare_scale.py runs end to end on a tiny simulated log (fresh worker processes, streamed path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_prepare_scale_smoke(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "prepare_scale.py"), "--sizes", "5000", "--sim-dir",
           str(tmp_path / "sim"), "--stream-min-bytes", "0", "--chunk-events", "2000", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert row["streamed"] and row["chunk_events"] == 2000 and row["load_cached"] and row["load_mapped"]
    assert row["events"] > 1000 and row["prepare_peak_rss_mb"] > 0 and row["cache_mb"] > 0
    assert not [p for p in (tmp_path / "sim").iterdir() if p.name.startswith("prep-cache")]  # caches removed

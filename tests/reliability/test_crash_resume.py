"""Crashes and restarts: real ``SIGKILL``s of ``intentrec train``, data preparation, ``predict`` and ``export``.

Every scenario runs the command in a child process, kills it with ``SIGKILL`` (no handler, no ``finally``, no
flush: what a crash, an OOM kill or a pre-empted machine does) and then checks what a later run finds on disk:

* **train**, killed in the middle of epoch 2 (0.4 of epoch 1's measured duration after epoch 1's checkpoint
  appeared): ``intentrec train --resume`` ends where an uninterrupted run with the same config and seed ends.
  Tolerance ``TOL = 1e-6`` (absolute) on every per-epoch loss and validation metric, the test metrics and the final
  weights. Both runs are single-threaded CPU processes with seeded data order and per-epoch dropout seeds, and the
  checkpoint restores the optimizer state and RNG states exactly, so the results are expected to be bit-identical;
  ``1e-6`` leaves room for nothing but float summation order, and the measured differences are printed.
* **train**, killed while the checkpoint itself is being saved (the save is stalled on purpose inside the child, so
  the kill lands at a known step): with a half-written ``last.tmp-*`` beside a complete ``last/``, and between the
  two renames of the swap (no ``last/`` at all, the old state in ``last.trash-*``, the new one complete in
  ``last.tmp-*``). Resuming must trust only a state whose manifest and checksums verify, pick the newest one, clear
  the leftovers, and still match the uninterrupted run.
* **prepare** (``intentrec data describe``, which builds the cache entry that ``train`` uses), killed at several
  moments of the streamed (out-of-core) build and once just before the entry is committed: the cache holds either
  no entry or a complete one that verifies; the next run rebuilds, gets the same arrays, and removes the temporary
  folders of the killed processes.
* **predict** and **export**, killed mid-write: the output path is absent, or still the complete earlier output;
  never a truncated file or bundle.

Run: ``pytest tests/reliability/test_crash_resume.py -q -s`` (``-s`` shows the measured differences).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from intentrec.data.adapters import bundled_movielens_path
from intentrec.data.cache import load_cached
from intentrec.datasets.streaming_sim import SimConfig, write_sharded_simulation
from intentrec.serve.bundle import load_bundle
from intentrec.train.checkpoint import (
    MANIFEST_FILE,
    load_training_state,
    recover_training_state,
    save_training_state,
    sha256_file,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
TOL = 1e-6
"""Absolute tolerance between a resumed and an uninterrupted run (see the module docstring)."""
POLL = 0.05
"""Seconds between two looks at the disk while waiting for a child."""
WAIT = 240.0
"""Upper bound (seconds) on any single wait for a child process: nothing in this file can hang."""
EPOCHS = 3
TRAIN_SETS = ["train.epochs=3", "train.patience=10", "train.num_threads=1"]
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")


# ----------------------------------------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", COLUMNS="250")
    return env


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` with stdout and stderr going to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=REPO)


def _tail(log: Path, n: int = 3000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-n:] if log.is_file() else "<no output>"


def _run(args: list[str], log: Path) -> str:
    """Run ``python <args>`` to completion (bounded by :data:`WAIT`) and return its output; fail on a non-zero exit."""
    proc = _spawn(args, log)
    try:
        code = proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        pytest.fail(f"`{' '.join(args)}` did not finish in {WAIT:.0f}s:\n{_tail(log)}")
    assert code == 0, f"`{' '.join(args)}` exited with {code}:\n{_tail(log)}"
    return log.read_text(encoding="utf-8", errors="replace")


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> float:
    """Poll ``condition`` until it holds (returns the monotonic time it was seen); fail if the child exits or
    :data:`WAIT` seconds pass first."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        if proc.poll() is not None:
            pytest.fail(f"the child exited ({proc.returncode}) before {what}:\n{_tail(log)}")
        time.sleep(POLL)
    proc.kill()
    proc.wait(timeout=30)
    pytest.fail(f"timed out after {WAIT:.0f}s waiting for {what}:\n{_tail(log)}")


def _sigkill(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGKILL the child and check that the signal is what ended it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    code = proc.wait(timeout=30)
    assert code == -signal.SIGKILL, f"the child ended with {code}, not by SIGKILL:\n{_tail(log)}"


def _script(path: Path, template: str) -> Path:
    """Write a child script (``template`` with ``{stall}`` filled in) that patches one step of intentrec, then runs
    the CLI with ``sys.argv[2:]``; ``sys.argv[1]`` is the marker file that ``stall()`` writes."""
    path.write_text(textwrap.dedent(template).format(stall=_STALL), encoding="utf-8")
    return path


_STALL = """
MARKER = Path(sys.argv[1])


def stall():
    MARKER.write_text("stalled")
    time.sleep(600)
"""
"""Source of the child scripts' ``stall()``: write the marker file and sleep until killed."""


# ----------------------------------------------------------------------------------------------------------
# train: runs, histories, comparison
# ----------------------------------------------------------------------------------------------------------


def _train_args(run: Path, cache: Path, *extra: str) -> list[str]:
    sets = [*TRAIN_SETS, f"data.cache_dir={cache}"]
    return ["-m", "intentrec", "train", "--config", str(TINY), "--out", str(run), "--no-progress",
            *(a for s in sets for a in ("--set", s)), *extra]


def _history(run: Path) -> list[dict[str, float]]:
    path = run / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _state_epoch(state: Path) -> int:
    """The 0-based epoch of a training-state directory (``scalars.epoch`` in its state.json)."""
    return int(json.loads((state / "state.json").read_text(encoding="utf-8"))["scalars"]["epoch"])


def _verifies(folder: Path) -> bool:
    """Whether a checkpoint or bundle folder's manifest lists files that all exist with their size and sha256."""
    for name in (MANIFEST_FILE, "bundle.json"):
        if (folder / name).is_file():
            files = json.loads((folder / name).read_text(encoding="utf-8"))["files"]
            return all((folder / f).is_file() and (folder / f).stat().st_size == e["bytes"]
                       and sha256_file(folder / f) == e["sha256"] for f, e in files.items())
    return False


def _leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.startswith(("last.tmp-", "last.trash-")))


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest |a - b| over the numeric values of two equally shaped (nested) metric documents."""
    assert a.keys() == b.keys()
    worst = 0.0
    for key, x in a.items():
        y = b[key]
        if isinstance(x, dict):
            worst = max(worst, _max_diff(x, y))
        elif isinstance(x, int | float) and not isinstance(x, bool):
            worst = max(worst, abs(float(x) - float(y)))
    return worst


def _compare(reference: Path, run: Path) -> dict[str, float]:
    """Max absolute differences between two finished runs (history, test metrics, final and best weights)."""
    h_ref, h_run = _history(reference), _history(run)
    assert [h["epoch"] for h in h_run] == [h["epoch"] for h in h_ref] == list(range(1, EPOCHS + 1))
    loss = max(abs(x[k] - y[k]) for x, y in zip(h_ref, h_run, strict=True) for k in x if k.startswith("loss/"))
    val = max(abs(x[k] - y[k]) for x, y in zip(h_ref, h_run, strict=True) for k in x if k.startswith("val/"))
    m_ref, m_run = (json.loads((r / "metrics.json").read_text(encoding="utf-8")) for r in (reference, run))
    test = max(_max_diff(m_ref["item"], m_run["item"]), _max_diff(m_ref["intents"], m_run["intents"]))
    assert m_run["training"]["best_epoch"] == m_ref["training"]["best_epoch"]
    assert m_run["training"]["epochs_run"] == m_ref["training"]["epochs_run"] == EPOCHS
    weights = 0.0
    for name in ("model.safetensors", "last/model.safetensors"):
        w_ref, w_run = load_file(reference / name), load_file(run / name)
        assert w_ref.keys() == w_run.keys()
        weights = max(weights, *(float((w_ref[k].double() - w_run[k].double()).abs().max()) for k in w_ref))
    diffs = {"loss": loss, "val": val, "test": test, "weights": weights}
    print(f"\n[crash-resume] {run.name}: max |resumed - uninterrupted|: per-epoch losses {loss:.3g}, "
          f"validation metrics {val:.3g}, test metrics {test:.3g}, weights {weights:.3g} (tolerance {TOL:g})")
    for what, value in diffs.items():
        assert value <= TOL, f"{what} differs by {value:.3g} > {TOL:g}"
    return diffs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module: the shared data cache and the uninterrupted reference run."""
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def uninterrupted(workdir: Path) -> Path:
    """The reference: the same config and seed trained in one go."""
    run = workdir / "uninterrupted"
    _run(_train_args(run, workdir / "cache"), workdir / "uninterrupted.log")
    return run


# ----------------------------------------------------------------------------------------------------------
# train: SIGKILL in the middle of an epoch
# ----------------------------------------------------------------------------------------------------------


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(uninterrupted: Path, workdir: Path) -> None:
    run, log = workdir / "killed-mid-epoch", workdir / "killed-mid-epoch.log"
    proc = _spawn(_train_args(run, workdir / "cache"), log)
    seen = _wait_for(lambda: (run / "last" / MANIFEST_FILE).is_file() and len(_history(run)) >= 1, proc, log,
                     "epoch 1's checkpoint")
    epoch_seconds = float(_history(run)[0]["train_seconds"])
    time.sleep(max(0.0, seen + 0.4 * epoch_seconds - time.monotonic()))  # ~40% into epoch 2
    _sigkill(proc, log)
    print(f"\n[crash-resume] SIGKILL {time.monotonic() - seen:.2f}s after epoch 1's checkpoint "
          f"(epoch 1 trained in {epoch_seconds:.2f}s)")

    # it died in epoch 2: epoch 1 is recorded and checkpointed, epoch 2 is not, nothing final was written
    assert [h["epoch"] for h in _history(run)] == [1], _tail(log)
    assert _state_epoch(run / "last") == 0 and _verifies(run / "last")
    assert not (run / "metrics.json").exists()

    out = _run(_train_args(run, workdir / "cache", "--resume"), workdir / "resumed-mid-epoch.log")
    assert "resumed from" in out and "epoch 1:" not in out  # epoch 1 was not trained again
    _compare(uninterrupted, run)
    assert _leftovers(run) == []


# ----------------------------------------------------------------------------------------------------------
# train: SIGKILL while the checkpoint is being written
# ----------------------------------------------------------------------------------------------------------

_STALLED_SAVE = """
    import os, secrets, sys, time
    from pathlib import Path
    from intentrec import cli
    from intentrec.train import checkpoint
    {stall}
    PHASE = os.environ["CRASH_PHASE"]
    saves = []
    write_file, swap = checkpoint._write_file, checkpoint._swap_into_place

    def stalled_write(path, data):  # mid_write: epoch 2's state file is never written (no manifest either)
        if PHASE == "mid_write" and len(saves) == 1 and path.name == checkpoint.STATE_FILE:
            stall()
        write_file(path, data)

    def stalled_swap(tmp, target):  # the new state is complete in last.tmp-*
        saves.append(tmp)
        if PHASE == "between_renames" and len(saves) == 2:
            os.rename(target, target.with_name(f"{{target.name}}.trash-{{secrets.token_hex(6)}}"))
            stall()  # no last/ at all: the old state in last.trash-*, the new one in last.tmp-*
        swap(tmp, target)

    checkpoint._write_file, checkpoint._swap_into_place = stalled_write, stalled_swap
    sys.argv = ["intentrec", *sys.argv[2:]]
    cli.main()
"""


@pytest.mark.parametrize("phase", ["mid_write", "between_renames"])
def test_sigkill_during_the_checkpoint_save_then_resume_matches(
    uninterrupted: Path, workdir: Path, phase: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, log, marker = workdir / f"killed-{phase}", workdir / f"killed-{phase}.log", workdir / f"{phase}.marker"
    script = _script(workdir / "stalled_save.py", _STALLED_SAVE)
    monkeypatch.setenv("CRASH_PHASE", phase)
    proc = _spawn([str(script), str(marker), *_train_args(run, workdir / "cache")[2:]], log)
    _wait_for(marker.is_file, proc, log, "the stalled save of epoch 2")
    _sigkill(proc, log)

    # epoch 2's history line is written before its state: the disk now holds one epoch more than the checkpoint
    assert [h["epoch"] for h in _history(run)] == [1, 2]
    leftovers = _leftovers(run)
    tmp = [run / n for n in leftovers if ".tmp-" in n]
    assert len(tmp) == 1
    if phase == "mid_write":  # last/ = epoch 1, complete; last.tmp-* = half of epoch 2's state, no manifest
        assert _verifies(run / "last") and _state_epoch(run / "last") == 0
        assert not (tmp[0] / MANIFEST_FILE).exists() and not _verifies(tmp[0])
        resumed_at = 1
    else:  # no last/; epoch 1 in last.trash-*, epoch 2 complete in last.tmp-*
        trash = [run / n for n in leftovers if ".trash-" in n]
        assert not (run / "last").exists() and len(trash) == 1
        assert _verifies(trash[0]) and _state_epoch(trash[0]) == 0
        assert _verifies(tmp[0]) and _state_epoch(tmp[0]) == 1
        resumed_at = 2  # the newest complete state wins

    out = _run(_train_args(run, workdir / "cache", "--resume"), workdir / f"resumed-{phase}.log")
    assert f"resumed from {run / 'last'} at epoch {resumed_at} " in " ".join(out.split()), out
    _compare(uninterrupted, run)  # also checks that history.jsonl lists epochs 1, 2, 3 once each
    assert _leftovers(run) == []


# ----------------------------------------------------------------------------------------------------------
# prepare: SIGKILL while the cache entry is being built
# ----------------------------------------------------------------------------------------------------------

_PREPARE = """
    import os, sys, time
    from pathlib import Path
    from intentrec import cli
    from intentrec.data import cache, chunked, pipeline
    {stall}
    if os.environ.get("CRASH_PHASE") == "before_commit":  # in-memory build, then stall before the entry's rename
        commit = cache.commit_entry

        def stalled_commit(root, key, tmp):
            stall()
            return commit(root, key, tmp)

        cache.commit_entry = pipeline.commit_entry = stalled_commit
    else:  # the out-of-core build in many small chunks (a few seconds on the simulator's small preset)
        pipeline.STREAM_MIN_BYTES = 0
        chunked.CHUNK_EVENTS = 2500
    Path(f"{{MARKER}}.started").write_text("imported")
    sys.argv = ["intentrec", *sys.argv[2:]]
    cli.main()
"""


def _sim_config(path: Path, sim: Path, cache: Path) -> Path:
    path.write_text(textwrap.dedent(f"""
        name: crash-prepare
        data:
          source: {{adapter: streaming_sim, path: {sim}}}
          cache_dir: {cache}
          intents:
            - {{name: action, kind: repeat, series_column: show_id}}
            - {{name: genre, kind: categorical, column: genre}}
          split: {{protocol: temporal}}
    """), encoding="utf-8")
    return path


def _entries(root: Path) -> tuple[list[Path], list[Path]]:
    """(committed entries, temporary folders) of a cache root."""
    if not root.is_dir():
        return [], []
    children = sorted(root.iterdir())
    return [p for p in children if not p.name.startswith(".")], [p for p in children if p.name.startswith(".")]


def _entry_arrays(root: Path, key: str) -> dict[str, np.ndarray]:
    hit = load_cached(root, key)
    assert hit is not None, f"the cache entry {root / key} does not load"
    data = hit[0]
    arrays = {name: np.asarray(getattr(data, name)) for name in ("offsets", "item_idx", "timestamps", "duration",
                                                                  "session", "numeric")}
    arrays.update({f"cat/{k}": np.asarray(v) for k, v in data.categorical.items()})
    arrays.update({f"split/{k}": np.asarray(getattr(data.split, k)) for k in ("train_len", "val_targets",
                                                                              "test_targets")})
    return arrays


def test_sigkill_during_prepare_leaves_no_cache_entry_a_later_run_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = write_sharded_simulation(SimConfig.preset("small"), tmp_path / "sim", 2)
    script = _script(tmp_path / "prepare.py", _PREPARE)
    marker = tmp_path / "marker"

    def args(root: Path) -> list[str]:
        cfg = _sim_config(tmp_path / f"{root.name}.yaml", sim, root)
        return [str(script), str(marker), "data", "describe", str(cfg), "--json"]

    # the reference: one uninterrupted streamed build, timed from the end of the imports
    reference, log = tmp_path / "reference-cache", tmp_path / "reference.log"
    proc = _spawn(args(reference), log)
    started = _wait_for(Path(f"{marker}.started").is_file, proc, log, "the imports")
    assert proc.wait(timeout=WAIT) == 0, _tail(log)
    build_seconds = time.monotonic() - started
    (committed,), temporary = _entries(reference)
    assert temporary == []
    key = committed.name
    expected = _entry_arrays(reference, key)

    # kill the same build at several moments; after each, the cache has no entry or a complete, verified one
    root = tmp_path / "cache"
    outcomes = []
    for i, fraction in enumerate((0.1, 0.3, 0.5, 0.7)):
        Path(f"{marker}.started").unlink(missing_ok=True)
        log = tmp_path / f"kill-{i}.log"
        proc = _spawn(args(root), log)
        started = _wait_for(Path(f"{marker}.started").is_file, proc, log, "the imports")
        time.sleep(max(0.0, started + fraction * build_seconds - time.monotonic()))
        finished_first = proc.poll() is not None
        if not finished_first:
            _sigkill(proc, log)
        committed_now, temporary = _entries(root)
        for entry in committed_now:  # whatever a later run would look at verifies and equals the reference
            assert entry.name == key
            got = _entry_arrays(root, key)
            assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got)
        state = "finished" if finished_first else "entry committed" if committed_now else "no entry"
        outcomes.append(f"{fraction:.0%}: {state}, {len(temporary)} temporary folder(s)")
        if committed_now:  # killed after the commit: start the next kill from an empty cache again
            shutil.rmtree(committed_now[0])
    assert any("no entry" in o for o in outcomes), f"no kill landed mid-build ({outcomes}, {build_seconds:.2f}s)"

    # a kill with the entry fully written (meta.json included) but not yet renamed into place (in-memory build)
    log = tmp_path / "before-commit.log"
    monkeypatch.setenv("CRASH_PHASE", "before_commit")
    proc = _spawn(args(root), log)
    _wait_for(marker.is_file, proc, log, "the stalled commit")
    _sigkill(proc, log)
    monkeypatch.delenv("CRASH_PHASE")
    committed_now, temporary = _entries(root)
    assert committed_now == [] and any((t / "meta.json").is_file() for t in temporary)
    outcomes.append(f"before the commit: no entry, {len(temporary)} temporary folder(s)")

    # the next run neither trusts nor trips over the leftovers: it rebuilds the same entry and clears them
    out = _run(args(root), tmp_path / "rebuild.log")
    assert json.loads(out[out.index("{"):])["fingerprint"] == key
    committed_now, temporary = _entries(root)
    assert [p.name for p in committed_now] == [key] and temporary == []
    got = _entry_arrays(root, key)
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    print(f"\n[crash-prepare] streamed build {build_seconds:.2f}s (imports excluded); kills at "
          f"{'; '.join(outcomes)}; the next run rebuilt an entry equal to the reference and removed the leftovers")


# ----------------------------------------------------------------------------------------------------------
# predict and export: SIGKILL mid-write
# ----------------------------------------------------------------------------------------------------------


def _requests(path: Path, copies: int) -> Path:
    """The bundled ratings ``copies`` times over (user ids suffixed), sorted by user: a few seconds of predict."""
    ratings = pl.read_csv(bundled_movielens_path() / "ratings.csv")
    frames = [ratings.with_columns((pl.col("userId").cast(pl.String) + f"-{c}").alias("userId"))
              for c in range(copies)]
    pl.concat(frames).write_csv(path)
    return path


def _predict_args(bundle: Path, requests: Path, out: Path) -> list[str]:
    return ["-m", "intentrec", "predict", str(bundle), "--input", str(requests), "--out", str(out), "--k", "20",
            "--column", "user_id=userId", "--column", "item_id=movieId", "--chunk-rows", "4000", "--no-progress"]


def test_sigkill_during_predict_leaves_no_truncated_output(tiny_bundle: Path, tmp_path: Path) -> None:
    requests = _requests(tmp_path / "requests.csv", copies=6)
    n_users = pl.read_csv(requests)["userId"].n_unique()
    out = tmp_path / "predictions.parquet"

    def partial() -> list[Path]:
        return [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.tmp-") and p.stat().st_size > 0]

    def kill_mid_write(log: Path) -> None:
        before = set(partial())
        proc = _spawn(_predict_args(tiny_bundle, requests, out), log)
        _wait_for(lambda: bool(set(partial()) - before), proc, log, "the first rows written")
        time.sleep(0.2)
        _sigkill(proc, log)

    # no earlier output: after the kill there is none
    kill_mid_write(tmp_path / "kill-1.log")
    assert not out.exists()

    # a finished output, then a killed rerun: the earlier file is untouched and still complete
    _run(_predict_args(tiny_bundle, requests, out), tmp_path / "full.log")
    digest = sha256_file(out)
    assert pl.read_parquet(out).height == n_users
    kill_mid_write(tmp_path / "kill-2.log")
    assert sha256_file(out) == digest and pl.read_parquet(out).height == n_users
    # the killed processes left only hidden temporary files (never read by anything), nothing at the output path
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".parquet" and p.name[0] != ".") == [out.name]
    print(f"\n[crash-predict] {n_users} users; 2 kills mid-write: output absent, then the earlier output unchanged")


_STALLED_EXPORT = """
    import sys, time
    from pathlib import Path
    from intentrec import cli
    from intentrec.serve import bundle
    {stall}
    digest = bundle.sha256_file

    def stalled_digest(path):  # every file of the new bundle is written; its manifest is not
        stall()
        return digest(path)

    bundle.sha256_file = stalled_digest
    sys.argv = ["intentrec", *sys.argv[2:]]
    cli.main()
"""


def test_sigkill_during_export_leaves_no_half_bundle(tiny_run: Path, tmp_path: Path) -> None:
    script = _script(tmp_path / "export.py", _STALLED_EXPORT)
    out = tmp_path / "bundle"

    def kill_mid_write(name: str) -> None:
        marker, log = tmp_path / f"{name}.marker", tmp_path / f"{name}.log"
        proc = _spawn([str(script), str(marker), "export", str(tiny_run), "--out", str(out)], log)
        _wait_for(marker.is_file, proc, log, "the stalled export")
        _sigkill(proc, log)

    kill_mid_write("first")
    assert not out.exists()
    _run(["-m", "intentrec", "export", str(tiny_run), "--out", str(out)], tmp_path / "export.log")
    version = load_bundle(out).model_version
    kill_mid_write("second")
    assert _verifies(out) and load_bundle(out).model_version == version
    assert all(not _verifies(p) for p in tmp_path.iterdir() if p.name.startswith("bundle.tmp-"))


# ----------------------------------------------------------------------------------------------------------
# the repair itself, on leftovers made by hand
# ----------------------------------------------------------------------------------------------------------


def test_recover_training_state_on_hand_made_leftovers(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    last = tmp_path / "last"
    assert recover_training_state(last) is None  # nothing there: nothing to do
    save_training_state(last, model, optimizer, {"epoch": 0})
    (tmp_path / "last.tmp-partial").mkdir()  # a save killed before its manifest
    (tmp_path / "last.tmp-partial" / "model.safetensors").write_bytes(b"\x00" * 10)
    shutil.copytree(last, tmp_path / "last.trash-old")  # a trash folder not yet deleted

    # last/ in place: kept as it is, the leftovers go
    assert "removed 2 leftover" in (recover_training_state(last) or "")
    assert _leftovers(tmp_path) == [] and _state_epoch(last) == 0

    # killed between the renames: no last/, the new state complete in .tmp-*, the old one in .trash-*
    save_training_state(tmp_path / "new", model, optimizer, {"epoch": 1})
    last.rename(tmp_path / "last.trash-x")
    (tmp_path / "new").rename(tmp_path / "last.tmp-y")
    (tmp_path / "last.tmp-z").mkdir()  # and a partial one
    assert "restored it from last.tmp-y" in (recover_training_state(last) or "")
    assert _leftovers(tmp_path) == [] and load_training_state(last, model, optimizer)["epoch"] == 1

    # a last/ that is not a checkpoint written here (no manifest): nothing is touched
    shutil.rmtree(last)
    last.mkdir()
    (tmp_path / "last.tmp-q").mkdir()
    assert recover_training_state(last) is None and _leftovers(tmp_path) == ["last.tmp-q"]

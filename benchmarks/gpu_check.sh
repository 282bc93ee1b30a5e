#!/usr/bin/env bash
# GPU check of intentrec (about 3-6 minutes): environment, a CUDA sanity step, training throughput on ~1M events.
#
# Run from the repository root on the GPU machine (no internet, nothing is installed):
#     OUT=gpu-out bash benchmarks/gpu_check.sh
#
# Python: .venv/bin/python when it imports torch with CUDA, else python3 / python from PATH (the first that does).
# Writes into $OUT (default ./gpu-out): env.txt, sanity.log, throughput_amp.{json,log}, throughput_fp32.{json,log}
# and throughput_amp_bs<N>.{json,log} for each batch size in $BATCH_SWEEP (default "1024"; empty skips it).
# Every step has its own timeout, capped so that the whole script stays within $BUDGET_S seconds (default 360;
# a step with under 20 s left is skipped); a failed step is reported and the next one still runs; the exit status
# is 1 when any step failed or was skipped. DEVICE=cpu (default cuda) is a dry run of the same steps on a CPU.
set -euo pipefail

OUT="${OUT:-./gpu-out}"
STEPS="${STEPS:-100}"
WARMUP="${WARMUP:-10}"
SIM_EVENTS="${SIM_EVENTS:-1000000}"
BATCH_SWEEP="${BATCH_SWEEP-1024}"
BUDGET_S="${BUDGET_S:-360}"
DEVICE="${DEVICE:-cuda}"
export DEVICE
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
FAILED=()
T0=$(date +%s)

say() { echo "=== [$(($(date +%s) - T0))s] $*"; }

PY=""
for cand in .venv/bin/python python3 python; do
    if command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c "import torch, numpy, polars, pydantic, yaml
assert '$DEVICE' == 'cpu' or torch.cuda.is_available()" >/dev/null 2>&1; then
        PY="$cand"
        break
    fi
done

say "environment"
{
    nvidia-smi || echo "nvidia-smi failed"
    for cand in .venv/bin/python python3 python; do
        command -v "$cand" >/dev/null 2>&1 || continue
        echo "--- $cand: $("$cand" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
    done
    echo "chosen python: ${PY:-none}"
} 2>&1 | tee "$OUT/env.txt"
if [[ -z "$PY" ]]; then
    echo "no python with torch ($DEVICE usable), numpy, polars, pydantic and yaml found; stopping" | tee -a "$OUT/env.txt"
    exit 1
fi
if [[ "$DEVICE" == cuda ]]; then
    "$PY" -c "import torch; print('device', torch.cuda.get_device_name(0), 'capability',
torch.cuda.get_device_capability(0), 'bf16', torch.cuda.is_bf16_supported(), 'cudnn', torch.backends.cudnn.version())" \
        2>&1 | tee -a "$OUT/env.txt"
fi

step() {  # step NAME SECONDS LOG CMD...: run with a timeout, log, remember failures
    local name=$1 limit=$2 log=$3
    shift 3
    local left=$((BUDGET_S - ($(date +%s) - T0)))
    if [[ $left -lt 20 ]]; then
        say "$name SKIPPED (${left}s of the ${BUDGET_S}s budget left)"
        FAILED+=("$name (skipped)")
        cat >/dev/null  # drain a heredoc
        return 0
    fi
    if [[ $limit -gt $left ]]; then limit=$left; fi
    say "$name (limit ${limit}s)"
    local rc=0
    timeout -k 15 "$limit" "$@" 2>&1 | tee "$log" || rc=$?
    if [[ $rc -ne 0 ]]; then
        say "$name FAILED (exit $rc)"
        FAILED+=("$name")
    fi
}

step "sanity" 90 "$OUT/sanity.log" "$PY" - <<'PYEOF'
"""One forward/backward of IntentRec V3 and SASRec on the tiny config, bf16 autocast on and off: finite loss/grads."""
import math
import os
import time

import torch

from intentrec.data import prepare
from intentrec.features.dataset import TrainingWindows
from intentrec.model import build_model
from intentrec.model.losses import IntentRecLoss
from intentrec.train.loop import _autocast
from intentrec.workflows import _collate_fn, load_experiment

dev = torch.device(os.environ.get("DEVICE", "cuda"))
ok = True
for arch in ("intentrec", "sasrec"):
    cfg = load_experiment("configs/tiny.yaml", [f"model.architecture={arch}", f"train.device={dev.type}"])
    data = prepare(cfg.data)
    windows = TrainingWindows(data, cfg.model.max_len, cfg.train.duration_weight)
    batch = _collate_fn(cfg, data)([windows[i] for i in range(min(64, len(windows)))]).to(dev)
    for amp in (True, False):
        torch.manual_seed(0)
        model = build_model(cfg.model, data.spec).to(dev).train()
        t = time.perf_counter()
        with _autocast(dev, amp):
            out = model(batch)
            loss = IntentRecLoss(cfg.train.lambda_intent)(model, out, batch)
        loss.total.backward()
        grad = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        value, gnorm = float(loss.total.detach()), float(grad.detach())
        good = math.isfinite(value) and math.isfinite(gnorm) and gnorm > 0
        ok &= good
        print(f"{cfg.model.label:13s} amp={amp!s:5s} hidden {out.item_hidden.dtype} loss {value:.4f} "
              f"grad-norm {gnorm:.4f} {time.perf_counter() - t:.2f}s {'OK' if good else 'NOT FINITE'}")
raise SystemExit(0 if ok else 1)
PYEOF

step "throughput amp (intentrec, sasrec)" 210 "$OUT/throughput_amp.log" \
    "$PY" benchmarks/train_throughput.py --sim-events "$SIM_EVENTS" --device "$DEVICE" --amp --arch intentrec sasrec \
    --steps "$STEPS" --warmup-steps "$WARMUP" --out "$OUT/throughput_amp.json"

step "throughput fp32 (intentrec)" 100 "$OUT/throughput_fp32.log" \
    "$PY" benchmarks/train_throughput.py --sim-events "$SIM_EVENTS" --device "$DEVICE" --no-amp --arch intentrec \
    --steps "$STEPS" --warmup-steps "$WARMUP" --out "$OUT/throughput_fp32.json"

for bs in $BATCH_SWEEP; do
    step "throughput amp batch $bs (intentrec, sasrec)" 100 "$OUT/throughput_amp_bs$bs.log" \
        "$PY" benchmarks/train_throughput.py --sim-events "$SIM_EVENTS" --device "$DEVICE" --amp --arch intentrec sasrec \
        --batch-size "$bs" --steps "$((STEPS / 2))" --warmup-steps "$WARMUP" --out "$OUT/throughput_amp_bs$bs.json"
done

say "done; files in $OUT:"
ls -l "$OUT"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    say "failed steps: ${FAILED[*]}"
    exit 1
fi

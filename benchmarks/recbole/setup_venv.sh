#!/usr/bin/env bash
# Create the separate virtual environment in which RecBole's SASRec runs for benchmarks/recbole_compare.py.
#
#   bash benchmarks/recbole/setup_venv.sh [VENV_DIR]      # default: .cache/recbole-venv (git-ignored)
#
# RecBole is not a dependency of intentrec and never enters the project's .venv. Idempotent: an existing venv is
# reused, and pip leaves the pinned packages alone when they are already installed.
#
# What is installed, and why:
#   * torch==2.13.0 first (the CPU wheel the project uses), so no later step can pull another torch build.
#   * recbole==1.2.1 with --no-deps: its metadata asks for ray<=2.6.3, thop, plotly, psutil, tabulate (used only by
#     recbole.quick_start, hyper-parameter tuning and FLOP counting, none of which the SASRec driver
#     benchmarks/recbole/run_recbole.py imports), so they are left out.
#   * what the modules that the driver imports (recbole.config, .data, .model, .trainer, .utils, .evaluator)
#     need at import or run time: numpy, scipy, pandas, tqdm, colorlog, colorama, scikit-learn (evaluator
#     metrics), pyyaml, texttable, and tensorboard (recbole.utils imports torch.utils.tensorboard at the top and
#     the Trainer opens a SummaryWriter).
#   * numpy<1.24: recbole/data/interaction.py evaluates `np.float` on every batch conversion, an alias that
#     numpy 1.24 removed (AttributeError). Pinning numpy avoids patching site-packages: nothing is patched.
#   * colorlog==4.7.2 and colorama==0.4.4: RecBole's own exact pins.
# The driver avoids one more incompatibility without a patch: torch >= 2.6 loads checkpoints with
# weights_only=True, which cannot read RecBole's checkpoint (it pickles the Config); the driver therefore never
# calls Trainer.evaluate(load_best_model=True) and loads the best checkpoint itself with weights_only=False.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.cache/recbole-venv}"
PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  PYTHON=python3
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# 1. torch before anything that depends on it
"${PIP[@]}" install -q "torch==2.13.0"
# 2. RecBole itself, without its unused heavy requirements (see above)
"${PIP[@]}" install -q --no-deps "recbole==1.2.1"
# 3. what the SASRec training path imports (pip then reports RecBole's unmet requirements ray, thop, plotly,
#    psutil and tabulate as a "dependency conflict": expected, the driver does not use them)
"${PIP[@]}" install -q \
  "numpy<1.24" "scipy" "pandas" "tqdm" "colorlog==4.7.2" "colorama==0.4.4" "scikit-learn" "pyyaml" \
  "texttable" "tensorboard"

# smoke check: the imports the driver needs, and the torch build
"$VENV/bin/python" - <<'EOF'
import numpy
import torch
from recbole.config import Config  # noqa: F401
from recbole.data import create_dataset, data_preparation  # noqa: F401
from recbole.model.sequential_recommender import SASRec  # noqa: F401
from recbole.trainer import Trainer  # noqa: F401
import recbole
print(f"RecBole {recbole.__version__}, torch {torch.__version__}, numpy {numpy.__version__}: ready")
EOF
echo "venv: $VENV"

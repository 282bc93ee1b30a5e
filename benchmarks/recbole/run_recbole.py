"""Train RecBole's SASRec on a converted S3-Rec dataset; runs inside the RecBole venv, never imports intentrec.

Usage (normally started by ``benchmarks/recbole_compare.py``)::

    .cache/recbole-venv/bin/python benchmarks/recbole/run_recbole.py --data-path .cache/recbole-data \\
        --dataset Beauty --epochs 3 --threads 2 --out runs/recbole-compare/recbole

The working directory should be the output folder: RecBole writes ``log/``, ``log_tensorboard/`` and (here)
``saved/`` relative to it. The driver writes ``summary.json`` there: the RecBole log file (which
``recbole_compare.py`` parses for the per-epoch training and evaluation times and validation metrics), the best
validation result, the test result of the best checkpoint (unless ``--no-test``), and the dataset sizes.

Only public RecBole API is used (``Config``, ``create_dataset``, ``data_preparation``, ``SASRec``, ``Trainer``);
``recbole.quick_start`` is avoided because it imports ray. The one deviation from ``run_recbole``: the best
checkpoint is loaded here with ``torch.load(..., weights_only=False)``, because torch >= 2.6 defaults to
``weights_only=True``, which cannot read RecBole's checkpoint (it pickles the Config object).

Hyperparameters (defaults = intentrec's ``configs/beauty.yaml`` where RecBole has the same knob): CE loss over the
full catalogue, 2 layers, 2 heads, hidden 64, inner 256 (ffn_mult 4), dropout 0.3 (hidden and attention), lr 1e-3,
gradient-norm clip 1.0, train batch 256 (training *targets*: RecBole's instances are (prefix, next item) pairs),
MAX_ITEM_LIST_LENGTH 50, validation every epoch on NDCG@10 with full ranking, early stopping after ``--patience``
epochs without improvement.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path


def build_config(args: argparse.Namespace) -> dict[str, object]:
    """The RecBole ``config_dict`` of the comparison."""
    out = Path(args.out).resolve()
    return {
        # data: converted by benchmarks/recbole/convert.py; nothing filtered (the S3-Rec files are 5-core)
        "data_path": str(Path(args.data_path).resolve()),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        # leave-one-out: last item test, second-last validation, ordered by the per-user index
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [5, 10, 20],
        "valid_metric": "NDCG@10",
        "metric_decimal_place": 6,  # RecBole rounds to 4 places by default; the threshold needs more
        "eval_batch_size": args.eval_batch_size,
        # model
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "n_layers": args.n_layers,
        "n_heads": args.n_heads,
        "hidden_size": args.hidden_size,
        "inner_size": 4 * args.hidden_size,
        "hidden_dropout_prob": args.dropout,
        "attn_dropout_prob": args.dropout,
        # training
        "epochs": args.epochs,
        "train_batch_size": args.batch_size,
        "learner": "adam",
        "learning_rate": args.lr,
        "weight_decay": 0.0,
        "clip_grad_norm": {"max_norm": 1.0},
        "eval_step": 1,
        "stopping_step": args.patience,
        # environment
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": False,
        "gpu_id": "",
        "worker": 0,
        "show_progress": False,
        "checkpoint_dir": str(out / "saved"),
        "log_wandb": False,
        "state": "INFO",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", required=True, help="RecBole data_path (holds <dataset>/<dataset>.inter)")
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--out", default=".", help="folder for summary.json and the best checkpoint")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--patience", type=int, default=10, help="RecBole stopping_step")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-test", action="store_true", help="skip the test evaluation of the best checkpoint")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = Config(model="SASRec", dataset=args.dataset, config_dict=build_config(args))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = logging.getLogger()
    log_file = next((h.baseFilename for h in logger.handlers if isinstance(h, logging.FileHandler)), None)
    logger.info(config)

    t0 = time.perf_counter()
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    prepare_seconds = time.perf_counter() - t0

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = Trainer(config, model)
    n_train = len(train_data._dataset)
    steps = -(-n_train // args.batch_size)
    print(f"TRAINING START: {n_train} training targets, {steps} steps/epoch, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    t_fit = time.perf_counter()
    best_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False, verbose=True)
    fit_seconds = time.perf_counter() - t_fit
    print("TRAINING END", flush=True)

    test_result = None
    if not args.no_test and os.path.exists(trainer.saved_model_file):
        checkpoint = torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)
        trainer.model.load_state_dict(checkpoint["state_dict"])
        trainer.model.load_other_parameter(checkpoint.get("other_parameter"))
        test_result = {k: float(v) for k, v in trainer.evaluate(test_data, load_best_model=False).items()}
        logger.info(f"test result (best validation checkpoint): {test_result}")

    import recbole

    summary = {
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "log_file": str(Path(log_file).resolve()) if log_file else None,
        "config": {k: v for k, v in build_config(args).items() if k not in {"data_path", "checkpoint_dir"}},
        "dataset": args.dataset,
        "users": int(dataset.user_num - 1),
        "items": int(dataset.item_num - 1),
        "interactions": int(dataset.inter_num),
        "train_targets": n_train,
        "validation_targets": len(valid_data._dataset),
        "test_targets": len(test_data._dataset),
        "steps_per_epoch": steps,
        "prepare_seconds": round(prepare_seconds, 2),
        "fit_seconds": round(fit_seconds, 2),
        "best_validation_score": float(best_score),
        "best_validation": {k: float(v) for k, v in (best_valid or {}).items()},
        "test": test_result,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Convert an S3-Rec benchmark file (Amazon Beauty by default) into RecBole atomic files.

Usage (from the repository root; standard library only, so any Python 3.11 runs it)::

    python benchmarks/recbole/convert.py                       # Beauty -> .cache/recbole-data/Beauty/Beauty.inter
    python benchmarks/recbole/convert.py --name Sports_and_Outdoors

Input: ``<src>/<name>.txt`` from the S3-Rec release (``shared/data/amazon-yelp-lastfm-s3rec``, see its
PROVENANCE.md): one user per line, ``user item_1 item_2 ... item_n`` in time order; the files carry no timestamps.

Output: ``<out>/<name>/<name>.inter``, tab-separated, header ``user_id:token item_id:token timestamp:float``,
one row per interaction, where ``timestamp`` is the interaction's index in the user's sequence (0, 1, ..., n-1).
With ``eval_args: {split: {LS: valid_and_test}, order: TO, group_by: user, mode: full}`` RecBole then sorts each
user's events by that index and holds out the last item as the test target (input i_1..i_{n-1}) and the
second-last as the validation target (input i_1..i_{n-2}); the training instances are every prefix of
i_1..i_{n-2} with its next item (targets i_2..i_{n-2}). This is the leave-one-out protocol intentrec uses on the
S3-Rec files (shared/docs/EVALUATION.md), with the files used as they are (already 5-core: RecBole must filter
nothing, so the driver keeps its default, empty, filters). Ids stay the S3-Rec ids, as tokens.

The conversion is idempotent: an output whose recorded source checksum matches is left as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "amazon-yelp-lastfm-s3rec"
DEFAULT_OUT = ROOT / ".cache" / "recbole-data"
HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(src: Path, name: str, out: Path, force: bool = False) -> dict[str, object]:
    """Write ``out/name/name.inter`` from ``src/name.txt``; return the statistics written to ``manifest.json``."""
    source = src / f"{name}.txt"
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found (give --src, the folder holding {name}.txt)")
    target_dir = out / name
    inter = target_dir / f"{name}.inter"
    manifest = target_dir / "manifest.json"
    checksum = _sha256(source)
    if not force and inter.is_file() and manifest.is_file():
        stats = json.loads(manifest.read_text(encoding="utf-8"))
        if stats.get("source_sha256") == checksum:
            return stats

    target_dir.mkdir(parents=True, exist_ok=True)
    users, interactions, min_len, max_len = 0, 0, None, 0
    items: set[str] = set()
    tmp = inter.with_suffix(".inter.tmp")
    with source.open(encoding="utf-8") as fin, tmp.open("w", encoding="utf-8") as fout:
        fout.write(HEADER)
        for line_no, line in enumerate(fin, start=1):
            parts = line.split()
            if not parts:
                continue
            user, seq = parts[0], parts[1:]
            if len(seq) < 3:
                raise ValueError(f"{source}:{line_no}: user {user} has {len(seq)} items; leave-one-out needs >= 3")
            for order, item in enumerate(seq):
                fout.write(f"{user}\t{item}\t{order}\n")
            users += 1
            interactions += len(seq)
            items.update(seq)
            min_len = len(seq) if min_len is None else min(min_len, len(seq))
            max_len = max(max_len, len(seq))
    os.replace(tmp, inter)
    stats: dict[str, object] = {
        "source": str(source), "source_sha256": checksum, "inter_file": str(inter), "users": users,
        "items": len(items), "interactions": interactions, "min_len": min_len, "max_len": max_len,
        # leave-one-out: targets i_2..i_{n-2} train, i_{n-1} validation, i_n test
        "train_targets": interactions - 3 * users, "validation_targets": users, "test_targets": users,
        "timestamp": "index of the interaction in the user's sequence (0-based); the files have no times",
    }
    manifest.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help=f"folder with <name>.txt (default {DEFAULT_SRC})")
    parser.add_argument("--name", default="Beauty", help="dataset name: Beauty, Sports_and_Outdoors, Yelp, LastFM")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"RecBole data_path (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="rewrite even when the output is up to date")
    args = parser.parse_args()
    try:
        stats = convert(args.src, args.name, args.out, args.force)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{stats['inter_file']}: {stats['users']:,} users, {stats['items']:,} items, "
          f"{stats['interactions']:,} interactions; {stats['train_targets']:,} training targets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

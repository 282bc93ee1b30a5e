"""Small file-system helpers shared by the writers of the data cache and the training checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(path: str | os.PathLike[str] | Path) -> None:
    """Flush a directory's entries to disk (makes a rename inside it durable).

    Best effort: some operating systems cannot open a directory, and some file systems refuse to sync one; both are
    ignored.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Generated datasets with known ground truth (no import-time work; import the submodules directly).

* :mod:`intentrec.datasets.streaming_sim` — a seeded simulator of Netflix-like streaming engagement logs (movies
  and multi-episode shows, watch durations, latent session intents and the generator's oracle intent predictions).
"""

from __future__ import annotations

__all__: list[str] = []

"""A seeded simulator of Netflix-like streaming engagement logs with known session intents (PAPER §1 "Intents").

Public logs have no watch durations and no movie-vs-show split, so this module generates them. The generative
story, per user and session, is:

1. **Catalogue.** ``n_movies`` movies and ``n_shows`` multi-episode shows (``show_id`` groups the episodes; a
   movie's ``show_id`` is its own ``item_id``). Each title has one primary genre (from ``n_genres`` of
   :data:`GENRES`, Zipf-like shares), a format (``movie``/``show``), a release date (back catalogue: an
   exponential age before the start; ``new_release_fraction`` of the titles are released during the simulated
   period, all episodes of a show on the same day), a popularity prior ``N(0, 1)`` and a latent taste vector.
   Runtimes: movies ~ N(105, 18) min, episodes 24-55 min per show.
2. **Users.** Long-term tastes: a genre preference vector (Dirichlet, floored), a show-vs-movie preference
   ``p_show`` (Beta(2, 2)), a latent taste vector, an activity level (sessions per week, log-normal) and a mixture
   over the four session intents (Dirichlet around ``intent_mix``). The appetite for new releases is the user's
   ``new_release`` share relative to the mean; it also tilts every session towards titles released in the last
   ``appetite_horizon_days``.
3. **Sessions.** Start times over ``period_days`` from ``start_date`` with a weekly (weekends busier) and daily
   (evening peak) rhythm; a session never starts before the previous one ended. Each session draws a latent intent
   ``true_intent``: ``continue`` (only if the user is in the middle of a show: 1 + Poisson episodes of one
   in-progress show, in order), ``discover`` (only titles new to the user, with an extra popularity tilt),
   ``genre_mood`` (a session genre drawn from the user's preferences, or uniformly with ``mood_explore``, gets a
   logit boost) or ``new_release`` (titles released in the last ``new_release_window_days`` get a logit boost).
4. **Items.** Every pick is drawn from an explicit probability vector over the titles released by the session
   start: ``softmax(taste · item features + intent boosts)``. Finished titles get a ``rewatch_penalty`` (a finished
   show restarts at episode 1), ``discover`` excludes seen titles, ``continue`` keeps in-progress shows only, with
   a bonus for recently watched ones. The picks of a non-continue session are distinct titles (sequential
   sampling without replacement); a show pick plays the user's next episode.
5. **Durations.** ``duration`` (minutes) = runtime × fraction watched, with fraction =
   ``sigmoid(completion_bias + completion_fit_slope · fit + N(0, completion_noise))`` clipped to [0.02, 1]; ``fit``
   is the user's taste match to the title (genre, format and latent terms, centred per user), so duration weighting
   is meaningful (PAPER §10 #12).

Labels (the pipeline derives the same from the log with ``repeat`` on ``show_id``, ``categorical`` on ``genre``
and ``format`` and ``recency`` on ``release_date``): ``action`` is ``repeat`` when the user engaged with the
title (show) before, else ``new``; ``genre``; ``format`` (``movie``/``show``); ``recency`` the release-age bucket at
the event time, named as ``intentrec.data.labels.recency_labels`` names them (``<=7d``, ``7d-30d``, ``30d-365d``,
``>365d`` for the default edges).

Before each item is drawn the generator records its **oracle**: for each of the four labels, the argmax of the
label distribution implied by the item-probability vector of that step given the latent state (intent, session
genre, watch state; for sequential draws, earlier picks of the session removed; the later episodes of a continue
session are certain) and that probability. The mean oracle accuracy is the best accuracy achievable knowing the
latent state: :func:`intent_ceilings`. It also records the played item's **oracle rank** under that vector (1 +
the number of titles more probable than the pick; the next episode stands for its show), so :func:`item_ceiling`
gives the best item ranking achievable knowing the latent state (HR@k, NDCG@k, MRR). Timestamps (seconds) strictly
increase per user.

Users are simulated in blocks, all their s-th sessions at once (numpy); titles are chunked so that a draw, the
label masses and the recency masses never need a cumulative sum over the whole catalogue per session.

Example:
    >>> log = simulate(SimConfig.preset("tiny"))
    >>> sorted(set(log.events["true_intent"]))
    ['continue', 'discover', 'genre_mood', 'new_release']
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from intentrec.errors import ConfigError, DataError
from intentrec.vocab import REPEAT_LABELS, recency_labels

__all__ = [
    "ACTION_LABELS",
    "FORMAT_LABELS",
    "GENRES",
    "PRESETS",
    "SIM_FILES",
    "SIM_INTENTS",
    "SIM_SHARD_FOLDER",
    "TRUE_INTENTS",
    "SimConfig",
    "SimulatedLog",
    "intent_ceilings",
    "item_ceiling",
    "rank_metrics",
    "read_simulation",
    "recency_bucket_labels",
    "simulate",
    "simulate_shard",
    "simulation_event_files",
    "write_sharded_simulation",
    "write_simulation",
]

GENRES = (
    "Drama", "Comedy", "Action", "Thriller", "Documentary", "Crime", "Romance", "Sci-Fi", "Animation", "Horror",
    "Family", "Fantasy", "Reality", "Anime", "Mystery",
)
"""Genre names; a config uses the first ``n_genres`` (earlier ones are more common)."""
TRUE_INTENTS = ("continue", "discover", "genre_mood", "new_release")
"""Latent session intents (``true_intent`` values), in ``intent_mix`` order."""
SIM_INTENTS = ("action", "genre", "format", "recency")
"""The four labels (PAPER §1: Action Type, Genre, Movie/Show, Time-since-release); ``label_*``/``oracle_*``."""
ACTION_LABELS = REPEAT_LABELS
"""``action`` labels (``intentrec.vocab.REPEAT_LABELS``)."""
FORMAT_LABELS = ("movie", "show")
"""``format`` labels."""
PRESETS = ("tiny", "small", "medium", "large")
"""Preset names of :meth:`SimConfig.preset`."""
SIM_FILES = ("events.parquet", "items.parquet", "config.json")
"""The data files :func:`write_simulation` writes (besides ``README.md``)."""
SIM_SHARD_FOLDER = "events"
"""Sub-folder holding ``part-<k>.parquet`` event shards in place of ``events.parquet``
(:func:`write_sharded_simulation`)."""

_DAY = 86400
_HOUR_WEIGHTS = np.array([
    0.30, 0.15, 0.08, 0.05, 0.04, 0.05, 0.10, 0.20, 0.30, 0.35, 0.40, 0.45,
    0.50, 0.50, 0.50, 0.55, 0.65, 0.80, 1.00, 1.30, 1.60, 1.70, 1.40, 0.80,
])
"""Relative session starts per hour of the day (UTC; evening peak)."""
_WEEKDAY_WEIGHTS = np.array([0.90, 0.90, 0.95, 1.00, 1.15, 1.35, 1.30])
"""Relative session starts per weekday, Monday first (weekends busier)."""
_EPISODE_RUNTIMES = np.array([24.0, 30.0, 45.0, 55.0])
_EPISODE_RUNTIME_P = np.array([0.3, 0.2, 0.3, 0.2])
_ADJECTIVES = (
    "Silent", "Broken", "Golden", "Hidden", "Last", "Crimson", "Endless", "Wild", "Distant", "Frozen", "Secret",
    "Burning", "Quiet", "Lost", "Bright", "Hollow", "Restless", "Midnight", "Electric", "Northern", "Velvet",
    "Savage", "Gentle", "Iron", "Paper", "Lonely", "Final", "Second", "Wandering", "Shattered",
)
_NOUNS = (
    "Harbor", "Kingdom", "River", "Signal", "Garden", "Frontier", "Empire", "Witness", "Horizon", "Circle", "Road",
    "Island", "Protocol", "Legacy", "Orchard", "Station", "Summer", "Shadow", "Machine", "Promise", "Tide", "Crown",
    "Hunt", "Letter", "Mirror", "Valley", "Storm", "Code", "Heist", "Ocean",
)
_NAME_RE = re.compile(r"^(?P<name>[A-Za-z_]+)(?:@seed=(?P<seed>-?\d+))?$")


recency_bucket_labels = recency_labels
"""Recency bucket labels named from the edges (the pipeline's own naming, ``intentrec.vocab.recency_labels``)."""


class SimConfig(BaseModel):
    """Every knob of the simulator, with documented defaults (the defaults are the ``small`` preset)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    name: str = "custom"
    """Label of the configuration (the preset name); shown in dataset names (``streaming_sim-<name>``)."""
    seed: int = 0
    """Seed of every random draw: the same config gives an identical log."""
    # catalogue -----------------------------------------------------------------------------------------------
    n_users: int = 2000
    """Number of users."""
    n_movies: int = 2000
    """Number of movies (one item each)."""
    n_shows: int = 1000
    """Number of shows (several episode items each)."""
    mean_episodes: float = 8.0
    """Mean episodes per show: 2 + Poisson(mean - 2), capped at ``max_episodes``."""
    max_episodes: int = 24
    """Largest number of episodes of a show."""
    n_genres: int = 12
    """Genres used (the first ``n_genres`` of :data:`GENRES`); one primary genre per title."""
    latent_dim: int = 8
    """Size of the latent user/title taste vectors (within-genre taste)."""
    start_date: dt.date = dt.date(2024, 1, 1)
    """First day of the simulated period (UTC midnight); timestamps are seconds since 1970-01-01."""
    period_days: int = 366
    """Length of the simulated period in days."""
    catalog_mean_age_days: float = 1800.0
    """Mean age at ``start_date`` of the back-catalogue titles (exponential, at least 1 day, at most 40 years)."""
    new_release_fraction: float = 0.12
    """Share of titles released during the simulated period (uniform over its days): the stream of new releases."""
    # users and sessions ------------------------------------------------------------------------------------
    sessions_per_week: float = 0.75
    """Mean sessions per user and week (each user's rate is log-normal around it)."""
    activity_sigma: float = 0.7
    """Log-normal sigma of the users' activity levels."""
    events_per_session: float = 2.4
    """Mean picks of a non-continue session: 1 + Poisson(mean - 1), capped at ``max_events_per_session``."""
    binge_episodes: float = 2.6
    """Mean episodes of a continue session: 1 + Poisson(mean - 1), capped by the episodes left and the max."""
    max_events_per_session: int = 8
    """Most events in one session."""
    intent_mix: tuple[float, float, float, float] = (0.38, 0.22, 0.25, 0.15)
    """Mean shares of the session intents (continue, discover, genre_mood, new_release)."""
    intent_concentration: float = 6.0
    """Dirichlet concentration of each user's intent mixture around ``intent_mix`` (smaller = more varied users)."""
    genre_concentration: float = 0.5
    """Dirichlet concentration per genre of the users' genre preferences (smaller = more specialised users)."""
    genre_floor: float = 0.03
    """Weight of the uniform distribution mixed into every genre preference (no genre is impossible)."""
    # item choice (logits) ----------------------------------------------------------------------------------
    genre_weight: float = 1.0
    """Logit weight of log(genre preference) of the title's genre."""
    format_weight: float = 1.0
    """Logit weight of log(p_show) for shows and log(1 - p_show) for movies."""
    latent_weight: float = 0.8
    """Logit weight of the latent taste match (user · title latent vectors)."""
    popularity_weight: float = 0.8
    """Logit weight of the title's popularity prior."""
    mood_boost: float = 3.0
    """``genre_mood``: logit boost of the session genre."""
    mood_explore: float = 0.15
    """``genre_mood``: probability that the session genre is uniform instead of drawn from the user's preferences."""
    new_release_boost: float = 4.0
    """``new_release``: logit boost of titles released within ``new_release_window_days`` of the session start."""
    new_release_window_days: float = 30.0
    """``new_release``: what counts as newly released."""
    appetite_weight: float = 1.0
    """Every session: logit boost ``appetite_weight · appetite · (1 - age / appetite_horizon_days)`` for young titles."""
    appetite_horizon_days: float = 365.0
    """Age at which the appetite boost reaches zero."""
    discover_popularity_boost: float = 0.7
    """``discover``: extra logit weight of the popularity prior (people discover what is promoted)."""
    rewatch_penalty: float = 4.0
    """Logit penalty of finished titles (a rewatch; a finished show restarts at episode 1); ``discover`` excludes
    every seen title."""
    continue_recency_weight: float = 2.0
    """``continue``: logit bonus ``weight · exp(-days since last watched / continue_decay_days)``."""
    continue_decay_days: float = 7.0
    """``continue``: decay of the recently-watched bonus."""
    # durations ---------------------------------------------------------------------------------------------
    completion_bias: float = 0.8
    """Logit of the fraction watched at average fit."""
    completion_fit_slope: float = 0.5
    """Increase of the logit of the fraction watched per unit of ``fit``."""
    completion_noise: float = 1.2
    """Standard deviation of the noise on the logit of the fraction watched."""
    mean_gap_seconds: float = 60.0
    """Mean pause between two events of a session (plus 5 s)."""
    # labels and compute ------------------------------------------------------------------------------------
    recency_buckets_days: tuple[float, ...] = (7.0, 30.0, 365.0)
    """Release-age bucket edges of the ``recency`` label (match the pipeline's ``buckets_days``)."""
    block_elements: int = 4_000_000
    """Users are simulated in blocks of about ``block_elements / n_titles`` (memory knob; changes the draws)."""

    _PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"n_users": 50, "n_movies": 130, "n_shows": 70, "mean_episodes": 6.0, "sessions_per_week": 0.8},
        "small": {},
        "medium": {"n_users": 20_000, "n_movies": 3000, "n_shows": 1500, "sessions_per_week": 0.55},
        "large": {"n_users": 100_000, "n_movies": 4000, "n_shows": 2000, "sessions_per_week": 0.4},
    }

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        positive = ("n_users", "max_episodes", "latent_dim", "period_days", "max_events_per_session", "block_elements")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if self.n_movies < 0 or self.n_shows < 0 or self.n_movies + self.n_shows < 2:
            raise ValueError("n_movies and n_shows must be >= 0 with at least 2 titles in all")
        if not 2 <= self.n_genres <= len(GENRES):
            raise ValueError(f"n_genres must be in [2, {len(GENRES)}]")
        if not 2.0 <= self.mean_episodes <= self.max_episodes or self.max_episodes < 2:
            raise ValueError("need 2 <= mean_episodes <= max_episodes")
        if not 0.0 <= self.new_release_fraction <= 1.0:
            raise ValueError("new_release_fraction must be in [0, 1]")
        if self.events_per_session < 1.0 or self.binge_episodes < 1.0:
            raise ValueError("events_per_session and binge_episodes must be >= 1")
        if any(w < 0 for w in self.intent_mix) or sum(self.intent_mix) <= 0:
            raise ValueError("intent_mix must be non-negative with a positive sum")
        for key in ("sessions_per_week", "catalog_mean_age_days", "intent_concentration", "genre_concentration",
                    "new_release_window_days", "appetite_horizon_days", "continue_decay_days"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0")
        if not 0.0 <= self.genre_floor <= 1.0 or not 0.0 <= self.mood_explore <= 1.0:
            raise ValueError("genre_floor and mood_explore must be in [0, 1]")
        edges = self.recency_buckets_days
        if not edges or any(e <= 0 for e in edges) or list(edges) != sorted(set(edges)):
            raise ValueError("recency_buckets_days must be positive and strictly increasing")
        return self

    @classmethod
    def preset(cls, name: str, seed: int = 0) -> SimConfig:
        """A named size (generation times on one shared CPU core): ``tiny`` (tests: 50 users, 200 titles, ~5k
        events, 0.2 s), ``small`` (2k users, 3k titles, ~200k events, ~2 s), ``medium`` (20k users, 4.5k titles,
        ~1.5M events, ~16 s), ``large`` (100k users, 6k titles, ~5.4M events, ~70 s, ~3.5 GB of memory).

        Raises:
            ConfigError: an unknown preset name (the message lists the names).
        """
        if name not in cls._PRESETS:
            raise ConfigError(f"unknown streaming_sim preset {name!r}; choose one of {list(PRESETS)}")
        return cls(name=name, seed=seed, **cls._PRESETS[name])

    @classmethod
    def from_name(cls, text: str) -> SimConfig:
        """Parse ``<preset>`` or ``<preset>@seed=<int>`` (e.g. ``small@seed=3``), as ``data.source.name`` gives it.

        Raises:
            ConfigError: the text does not have that form or names an unknown preset.
        """
        match = _NAME_RE.match(text.strip())
        if match is None:
            raise ConfigError(
                f"data.source.name = {text!r}: expected a preset name {list(PRESETS)}, optionally with a seed "
                "such as 'small@seed=3'"
            )
        return cls.preset(match["name"], seed=int(match["seed"] or 0))

    @property
    def label(self) -> str:
        """``<name>`` or ``<name>@seed=<seed>`` when the seed is not 0."""
        return self.name if self.seed == 0 else f"{self.name}@seed={self.seed}"

    @property
    def genres(self) -> tuple[str, ...]:
        """The genre names in use."""
        return GENRES[: self.n_genres]

    @property
    def recency_labels(self) -> list[str]:
        """The ``recency`` label strings (one per bucket)."""
        return recency_bucket_labels(self.recency_buckets_days)


@dataclass(frozen=True)
class SimulatedLog:
    """A simulated engagement log.

    ``events`` (one row per play, sorted by user then time; timestamps strictly increase per user):

    * ``user_id`` (str), ``item_id`` (str), ``timestamp`` (Int64 seconds since the epoch), ``duration`` (Float64
      minutes watched), ``session_id`` (str, ``<user_id>-<session number>``), ``true_intent`` (str, one of
      :data:`TRUE_INTENTS`), ``fit`` (Float64 taste match of the user and the title, centred per user);
    * ``label_<intent>`` (str) for each of :data:`SIM_INTENTS`: the realised label of the event;
    * ``oracle_<intent>`` (str) and ``oracle_<intent>_p`` (Float64): the generator's prediction made before the
      item was drawn and its probability;
    * ``oracle_item_rank`` (Int64): the played item's rank under the step's item-probability vector (1 = the most
      probable; ties counted in its favour).

    ``items`` (one row per movie or episode): ``item_id``, ``title``, ``genre``, ``format`` (``movie``/``show``),
    ``show_id`` (== ``item_id`` for movies), ``episode`` (1 for movies), ``n_episodes``, ``release_date`` (Date),
    ``runtime`` (minutes), ``popularity`` (the prior).
    """

    events: pl.DataFrame
    """(N, 20) the plays."""
    items: pl.DataFrame
    """(I, 10) the catalogue items."""
    config: SimConfig
    """The configuration that generated the log."""


# ----------------------------------------------------------------------------------------------------------
# catalogue and users
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Catalogue:
    genre: np.ndarray  # (T,) int64 primary genre
    is_show: np.ndarray  # (T,) bool
    n_eps: np.ndarray  # (T,) int64 episodes (1 for movies)
    release_sec: np.ndarray  # (T,) int64 release time, ascending
    pop: np.ndarray  # (T,) float64 popularity prior
    item_start: np.ndarray  # (T,) int64 item index of the first episode
    runtime: np.ndarray  # (I,) float64 minutes per item
    features: np.ndarray  # (T, K) float32: genre one-hot | movie, show | latent | popularity
    items: pl.DataFrame  # (I, 10)


def _start_seconds(cfg: SimConfig) -> int:
    return (cfg.start_date - dt.date(1970, 1, 1)).days * _DAY


def _genre_shares(n: int) -> np.ndarray:
    w = 1.0 / np.sqrt(np.arange(1, n + 1))  # (G,)
    return w / w.sum()


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    adj = rng.integers(0, len(_ADJECTIVES), n)
    noun = rng.integers(0, len(_NOUNS), n)
    return [f"{_ADJECTIVES[a]} {_NOUNS[b]}" for a, b in zip(adj.tolist(), noun.tolist(), strict=True)]


def _number_sequels(names: list[str]) -> list[str]:
    """Repeated names (in release order) become sequels: ``Lost Harbor``, ``Lost Harbor 2``, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return out


def _catalogue(cfg: SimConfig, rng: np.random.Generator) -> _Catalogue:
    n_titles = cfg.n_movies + cfg.n_shows
    n_genres, start_day = cfg.n_genres, _start_seconds(cfg) // _DAY
    is_show = np.arange(n_titles) >= cfg.n_movies  # (T,)
    genre = rng.choice(n_genres, size=n_titles, p=_genre_shares(n_genres))  # (T,)
    n_new = round(cfg.new_release_fraction * n_titles)
    new = np.zeros(n_titles, dtype=bool)
    new[rng.permutation(n_titles)[:n_new]] = True
    age = np.minimum(np.ceil(rng.exponential(cfg.catalog_mean_age_days, n_titles)), 40 * 365).astype(np.int64)
    day = np.where(new, start_day + rng.integers(0, cfg.period_days, n_titles), start_day - np.maximum(age, 1))
    n_eps = np.where(
        is_show, np.minimum(2 + rng.poisson(cfg.mean_episodes - 2.0, n_titles), cfg.max_episodes), 1
    ).astype(np.int64)
    pop = rng.standard_normal(n_titles)
    latent = rng.standard_normal((n_titles, cfg.latent_dim)) / np.sqrt(cfg.latent_dim)  # (T, d)
    names = _titles(rng, n_titles)
    show_minutes = rng.choice(_EPISODE_RUNTIMES, size=n_titles, p=_EPISODE_RUNTIME_P)  # (T,)
    movie_minutes = np.clip(rng.normal(105.0, 18.0, n_titles), 75.0, 170.0)  # (T,)

    order = np.lexsort((np.arange(n_titles), day))  # release order; internal title index = position
    genre, is_show, day, n_eps, pop, latent = genre[order], is_show[order], day[order], n_eps[order], pop[order], latent[order]
    names = _number_sequels([names[i] for i in order.tolist()])
    show_minutes, movie_minutes = show_minutes[order], movie_minutes[order]
    item_start = np.concatenate([[0], np.cumsum(n_eps)[:-1]]).astype(np.int64)  # (T,)
    n_items = int(n_eps.sum())
    item_title = np.repeat(np.arange(n_titles), n_eps)  # (I,)
    episode = np.arange(n_items) - item_start[item_title] + 1  # (I,)
    jitter = rng.uniform(-3.0, 3.0, n_items)
    runtime = np.where(is_show[item_title], show_minutes[item_title] + jitter, movie_minutes[item_title])  # (I,)

    kind_rank = np.zeros(n_titles, dtype=np.int64)  # movie / show number in release order
    kind_rank[~is_show] = np.arange(int((~is_show).sum())) + 1
    kind_rank[is_show] = np.arange(int(is_show.sum())) + 1
    title_id = [f"s{k:05d}" if s else f"m{k:05d}" for k, s in zip(kind_rank.tolist(), is_show.tolist(), strict=True)]
    ids = pl.Series(title_id, dtype=pl.String)
    g_names = pl.Series(cfg.genres, dtype=pl.String)
    t_idx = pl.Series(item_title)
    show_id = ids.gather(t_idx)
    shows = pl.Series(is_show[item_title])
    ep = pl.Series(episode.astype(np.int64))
    items = pl.DataFrame({
        "item_id": pl.select(
            pl.when(shows).then(pl.concat_str([show_id, pl.lit("e"), ep.cast(pl.String).str.zfill(2)]))
            .otherwise(show_id)
        ).to_series(),
        "title": pl.select(
            pl.when(shows).then(pl.concat_str([pl.Series(names).gather(t_idx), pl.lit(": Episode "), ep.cast(pl.String)]))
            .otherwise(pl.Series(names).gather(t_idx))
        ).to_series(),
        "genre": g_names.gather(pl.Series(genre[item_title])),
        "format": pl.Series(FORMAT_LABELS).gather(pl.Series(is_show[item_title].astype(np.int64))),
        "show_id": show_id,
        "episode": ep,
        "n_episodes": pl.Series(n_eps[item_title]),
        "release_date": pl.Series(day[item_title].astype("datetime64[D]")).cast(pl.Date),
        "runtime": pl.Series(np.round(runtime, 1)),
        "popularity": pl.Series(np.round(pop[item_title], 4)),
    })

    onehot = np.eye(n_genres)[genre]  # (T, G)
    fmt = np.stack([~is_show, is_show], axis=1).astype(np.float64)  # (T, 2)
    features = np.concatenate([onehot, fmt, latent, pop[:, None]], axis=1).astype(np.float32)  # (T, K)
    return _Catalogue(
        genre=genre, is_show=is_show, n_eps=n_eps, release_sec=day * _DAY, pop=pop, item_start=item_start,
        runtime=np.round(runtime, 1), features=features, items=items,
    )


@dataclass
class _Users:
    features: np.ndarray  # (U, K) float32 logit weights matching the catalogue features
    genre_pref: np.ndarray  # (U, G)
    intent_mix: np.ndarray  # (U, 4)
    appetite: np.ndarray  # (U,) new-release appetite (1 = average)
    fit_mean: np.ndarray  # (U,) mean taste match over the catalogue
    session_offsets: np.ndarray  # (U + 1,) CSR offsets into session_start
    session_start: np.ndarray  # (S,) int64 scheduled session starts, ascending per user


def _users(cfg: SimConfig, cat: _Catalogue, rng: np.random.Generator) -> _Users:
    n, g = cfg.n_users, cfg.n_genres
    base = _genre_shares(g)
    pref = rng.dirichlet(cfg.genre_concentration * g * base, size=n)  # (U, G)
    pref = (1.0 - cfg.genre_floor) * pref + cfg.genre_floor / g
    p_show = np.clip(rng.beta(2.0, 2.0, n), 0.05, 0.95)  # (U,)
    latent = rng.standard_normal((n, cfg.latent_dim))  # (U, d)
    mix0 = np.asarray(cfg.intent_mix, dtype=np.float64)
    mix0 = mix0 / mix0.sum()
    alpha = np.maximum(cfg.intent_concentration * mix0, 1e-3)
    mix = rng.dirichlet(alpha, size=n) * (mix0 > 0)  # (U, 4)
    mix = mix / mix.sum(1, keepdims=True)
    appetite = np.minimum(mix[:, 3] / max(mix0[3], 1e-9), 3.0)  # (U,)
    features = np.concatenate([
        cfg.genre_weight * np.log(pref),
        cfg.format_weight * np.log(np.stack([1.0 - p_show, p_show], axis=1)),
        cfg.latent_weight * latent,
        np.full((n, 1), cfg.popularity_weight),
    ], axis=1).astype(np.float32)  # (U, K)
    fit_mean = features[:, :-1].astype(np.float64) @ cat.features[:, :-1].mean(0).astype(np.float64)  # (U,)

    weeks = cfg.period_days / 7.0
    rate = cfg.sessions_per_week * np.exp(cfg.activity_sigma * rng.standard_normal(n) - cfg.activity_sigma**2 / 2)
    n_sessions = 2 + rng.poisson(rate * weeks)  # (U,)
    total = int(n_sessions.sum())
    days = np.arange(cfg.period_days)
    weekday = (cfg.start_date.weekday() + days) % 7
    day_p = _WEEKDAY_WEIGHTS[weekday] / _WEEKDAY_WEIGHTS[weekday].sum()
    day = rng.choice(cfg.period_days, size=total, p=day_p)
    hour = rng.choice(24, size=total, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    start = _start_seconds(cfg) + day * _DAY + hour * 3600 + rng.integers(0, 3600, total)  # (S,)
    owner = np.repeat(np.arange(n), n_sessions)
    order = np.lexsort((start, owner))
    offsets = np.concatenate([[0], np.cumsum(n_sessions)]).astype(np.int64)
    return _Users(features, pref, mix, appetite, fit_mean, offsets, start[order].astype(np.int64))


# ----------------------------------------------------------------------------------------------------------
# sessions
# ----------------------------------------------------------------------------------------------------------


_CONTINUE, _DISCOVER, _MOOD, _NEW = range(4)
_CHUNK = 64
"""Most titles in one chunk of the two-level sampler."""


@dataclass
class _Step:
    """The events of one session per active row, on an (R, kmax) grid (titles in the simulator's order)."""

    title: np.ndarray  # (R, k) int64 title index (-1 where no event)
    episode: np.ndarray  # (R, k) int64
    oracle: np.ndarray  # (R, k, 4) int64 oracle labels (action, genre, format, recency)
    oracle_p: np.ndarray  # (R, k, 4) float64 their probabilities
    oracle_rank: np.ndarray  # (R, k) int64 rank of the played item under the step's item probabilities (1 = top)
    action: np.ndarray  # (R, k) int64 realised action label
    fit: np.ndarray  # (R, k) float64 taste match (set once the titles are known)
    duration: np.ndarray  # (R, k) float64 minutes watched


class _Block:
    """Watch state of one block of users (rows); the seen (row, title) pairs are also kept as a sparse list."""

    def __init__(self, static: np.ndarray) -> None:
        n_rows, n_titles = static.shape
        self.static = static  # (B, T) float32 exp(taste logits): the session-independent part of every vector
        self.state = np.zeros((n_rows, n_titles), dtype=np.int8)  # 0 unseen, 1 in progress (show), 2 finished
        self.prog = np.zeros((n_rows, n_titles), dtype=np.int16)  # last episode watched
        self.last = np.zeros((n_rows, n_titles), dtype=np.float32)  # day (since the start) last watched
        self.seen_rows = np.zeros(0, dtype=np.int64)  # (P,) block rows of the seen pairs
        self.seen_titles = np.zeros(0, dtype=np.int64)  # (P,) their titles

    def pairs(self, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Seen pairs of the rows ``[first, B)``: (local row, title, state), each (P,)."""
        sel = self.seen_rows >= first
        rows, titles = self.seen_rows[sel], self.seen_titles[sel]
        return rows - first, titles, self.state[rows, titles]


def _subset(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], rows: np.ndarray, n_all: int) -> tuple[np.ndarray, ...]:
    """The pairs of ``rows`` (local indices into ``n_all`` rows), renumbered 0..len(rows)-1."""
    loc = np.full(n_all, -1)
    loc[rows] = np.arange(len(rows))
    keep = loc[pairs[0]] >= 0
    return loc[pairs[0][keep]], pairs[1][keep], pairs[2][keep]


class _Weights:
    """Unnormalised item-probability vectors of some sessions, with two-level sums for sampling and masses.

    The simulator orders titles as: old titles (released before every recency edge and boost horizon) grouped by
    (genre, format), then young titles in release order; chunks of at most :data:`_CHUNK` titles never straddle a
    group. ``flat`` is the running sum of the chunk sums over all rows: one ``searchsorted`` finds a (row, chunk)
    and a short cumulative sum inside the chunk finds the title (no cumulative sum over whole rows).
    """

    def __init__(self, p: np.ndarray, sim: _Simulator) -> None:
        self.p, self.sim = p, sim  # (n, T) float32, zero on unavailable titles
        self.sums = np.add.reduceat(p, sim.chunk_start, axis=1).astype(np.float64)  # (n, nc)
        self.n_chunks = self.sums.shape[1]
        self.flat = np.cumsum(self.sums.ravel())  # (n * nc,)
        ends = self.flat[self.n_chunks - 1 :: self.n_chunks]  # (n,) running sum at each row's end
        self.base = np.concatenate([[0.0], ends[:-1]])  # (n,) running sum before each row
        self.total = ends - self.base  # (n,)

    def joint_mass(self) -> np.ndarray:
        """(n, G * 2) mass per (genre, format) label pair (index genre * 2 + is_show)."""
        sim = self.sim
        out = np.zeros((len(self.p), sim.n_genres * 2))
        if sim.old_seg_chunk.size:
            out[:, sim.old_seg_label] = np.add.reduceat(self.sums[:, : sim.n_old_chunks], sim.old_seg_chunk, axis=1)
        if sim.young_order.size:
            young = np.take(self.p[:, sim.j0 :], sim.young_order, axis=1)  # (n, Ty) grouped by label
            out[:, sim.young_seg_label] += np.add.reduceat(young, sim.young_seg_start, axis=1)
        return out

    def _chunk_values(self, row: np.ndarray, ch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols = self.sim.chunk_start[ch][..., None] + np.arange(_CHUNK)  # (..., c)
        inside = cols < self.sim.chunk_end[ch][..., None]
        rows = row.reshape(row.shape + (1,) * (cols.ndim - row.ndim))
        vals = np.where(inside, self.p[rows, np.minimum(cols, self.p.shape[1] - 1)], 0.0)
        return cols, vals

    def prefix(self, row: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Mass of titles ``[0, a)`` of each row.  row (m,) and a (m, E) -> (m, E)."""
        nc = self.n_chunks
        ch = np.clip(np.searchsorted(self.sim.chunk_start, a, side="right") - 1, 0, nc - 1)  # (m, E)
        whole = np.where(ch > 0, self.flat[row[:, None] * nc + np.maximum(ch - 1, 0)] - self.base[row][:, None], 0.0)
        cols, vals = self._chunk_values(row[:, None], ch)  # (m, E, c)
        return whole + np.where(cols < a[..., None], vals, 0.0).sum(-1)

    def draw(self, rng: np.random.Generator, row: np.ndarray) -> np.ndarray:
        """One title per entry of ``row`` (m,), drawn from that row's vector (inverse CDF).  Returns (m,)."""
        nc = self.n_chunks
        v = self.base[row] + rng.random(len(row)) * self.total[row] * (1.0 - 1e-9)  # (m,)
        ch = np.clip(np.searchsorted(self.flat, v, side="right") - row * nc, 0, nc - 1)  # (m,)
        below = np.where(ch > 0, self.flat[row * nc + np.maximum(ch - 1, 0)], self.base[row])  # (m,)
        cols, vals = self._chunk_values(row, ch)  # (m, c)
        vals = vals.astype(np.float64)
        pos = (np.cumsum(vals, 1) + below[:, None] <= v[:, None]).sum(1)  # (m,)
        last_positive = _CHUNK - 1 - np.argmax(vals[:, ::-1] > 0, axis=1)  # rounding never picks a zero entry
        return cols[np.arange(len(row)), np.minimum(pos, last_positive)]


class _Simulator:
    """Simulates the sessions of one block of users in lockstep (session s of every active user at once).

    Titles are re-ordered internally (see :class:`_Weights`); ``item_start`` maps them back to items.
    """

    def __init__(self, cfg: SimConfig, cat: _Catalogue, users: _Users) -> None:
        self.cfg, self.users = cfg, users
        self.n_genres = g = cfg.n_genres
        self.start_sec = _start_seconds(cfg)
        self.edges_days = np.asarray(cfg.recency_buckets_days, dtype=np.float64)  # (E,)
        self.edges_sec = self.edges_days * _DAY
        horizon = max(cfg.appetite_horizon_days, cfg.new_release_window_days, float(self.edges_days[-1])) * _DAY
        label = cat.genre * 2 + cat.is_show  # (T,) joint (genre, format) label
        old = np.nonzero(cat.release_sec < self.start_sec - horizon)[0]
        old = old[np.lexsort((cat.release_sec[old], label[old]))]  # grouped by label
        young = np.nonzero(cat.release_sec >= self.start_sec - horizon)[0]  # release order (cat is sorted)
        perm = np.concatenate([old, young])  # internal -> catalogue title
        self.j0, self.n_titles = len(old), len(perm)
        self.genre, self.is_show, self.n_eps = cat.genre[perm], cat.is_show[perm], cat.n_eps[perm]
        self.release, self.item_start = cat.release_sec[perm], cat.item_start[perm]
        self.runtime = cat.runtime  # (I,) minutes per item (items keep the catalogue order)
        self.features = cat.features[perm]  # (T, K)
        self.xi_t = np.ascontiguousarray(self.features.T)  # (K, T)
        self.label = label[perm]
        # chunks: within each old label group, then over the young titles
        starts: list[int] = []
        group_start = np.flatnonzero(np.diff(self.label[: self.j0], prepend=-1)) if self.j0 else np.zeros(0, int)
        group_end = np.append(group_start[1:], self.j0)
        for a, b in zip(group_start.tolist(), group_end.tolist(), strict=True):
            starts += range(a, b, _CHUNK)
        self.n_old_chunks = len(starts)
        starts += range(self.j0, self.n_titles, _CHUNK)
        self.chunk_start = np.asarray(starts, dtype=np.int64)  # (nc,)
        self.chunk_end = np.append(self.chunk_start[1:], self.n_titles)  # (nc,)
        old_chunk_label = self.label[self.chunk_start[: self.n_old_chunks]]
        self.old_seg_chunk = np.flatnonzero(np.diff(old_chunk_label, prepend=-1))  # first chunk of each group
        self.old_seg_label = old_chunk_label[self.old_seg_chunk]
        young_label = self.label[self.j0 :]
        self.young_order = np.argsort(young_label, kind="stable")  # (Ty,)
        sorted_label = young_label[self.young_order]
        self.young_seg_start = np.flatnonzero(np.diff(sorted_label, prepend=-1))
        self.young_seg_label = sorted_label[self.young_seg_start]
        self.rel_young = self.release[self.j0 :]  # (Ty,) ascending
        self.young_days = ((self.rel_young - self.start_sec) / _DAY).astype(np.float32)  # (Ty,)
        # multiplicative session factors (exp of the logit boosts)
        self.mood_factor = np.where(
            self.genre[None, :] == np.arange(g)[:, None], np.exp(cfg.mood_boost), 1.0
        ).astype(np.float32)  # (G, T)
        self.discover_tilt = np.exp(cfg.discover_popularity_boost * cat.pop[perm]).astype(np.float32)  # (T,)
        self.rewatch = np.float32(np.exp(-cfg.rewatch_penalty))

    def block(self, users: np.ndarray) -> _Block:
        """A fresh block for ``users`` (B,): exp of their static taste logits, nothing watched."""
        return _Block(np.exp(self.users.features[users] @ self.xi_t))  # (B, T)

    # -- helpers ------------------------------------------------------------------------------------------

    def _young_factor(self, t0: np.ndarray, users: np.ndarray, boost: np.ndarray) -> np.ndarray:
        """exp(appetite + new-release logits) of the young titles; 0 before release.  (R, Ty)"""
        cfg = self.cfg
        now = ((t0 - self.start_sec) / _DAY).astype(np.float32)  # (R,) days since the start
        age = now[:, None] - self.young_days[None, :]  # (R, Ty) days
        app = (cfg.appetite_weight * self.users.appetite[users]).astype(np.float32)  # (R,)
        out = app[:, None] * np.maximum(1.0 - age / np.float32(cfg.appetite_horizon_days), 0.0)  # (R, Ty)
        out += boost.astype(np.float32)[:, None] * (age <= cfg.new_release_window_days)
        out[age < 0] = -np.inf
        return np.exp(out, out=out)

    def bucket(self, t: np.ndarray, title: np.ndarray) -> np.ndarray:
        """Realised recency bucket of ``title`` at ``t`` (the pipeline's rule: age <= edge falls in the lower one)."""
        age = (t.astype(np.float64) - self.release[title].astype(np.float64)) / float(_DAY)
        return np.searchsorted(self.edges_days, age, side="left")

    def _before_mass(self, w: _Weights, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Mass of the titles released before ``t - edge``, for each edge.  rows, t (m,) -> (m, E)."""
        bound = t[:, None].astype(np.float64) - self.edges_sec[None, :]  # (m, E), all after the old titles
        a = self.j0 + np.searchsorted(self.rel_young, bound.ravel(), side="left").reshape(bound.shape)  # (m, E)
        return w.prefix(rows, a)

    @staticmethod
    def _buckets_from_before(total: np.ndarray, before: np.ndarray) -> np.ndarray:
        """Bucket masses (m, E + 1) from the total and the before-edge masses (m, E) (edges ascending)."""
        cols = [total - before[:, 0]]
        cols += [before[:, k - 1] - before[:, k] for k in range(1, before.shape[1])]
        cols.append(before[:, -1])
        return np.stack(cols, axis=1)

    def _fit(self, users: np.ndarray, title: np.ndarray) -> np.ndarray:
        xu = self.users.features[users, :-1].astype(np.float64)  # (R, K - 1)
        xi = self.features[title, :-1].astype(np.float64)  # (R, k, K - 1)
        return np.einsum("rd,rkd->rk", xu, xi) - self.users.fit_mean[users][:, None]  # (R, k)

    # -- one step -----------------------------------------------------------------------------------------

    def step(
        self, rng: np.random.Generator, users: np.ndarray, block: _Block, first: int, t0: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, _Step]:
        """Simulate one session for each of the block rows ``[first, B)`` (local rows ``0..R-1``).

        Args:
            rng: the block's generator.
            users: (R,) global user indices of the rows.
            block: the block's watch state; updated in place.
            first: the first active block row.
            t0: (R,) int64 session start times.

        Returns:
            ``(intent, times, step)``: (R,) intent codes, (R, k + 1) event times (the last column is when the
            session ended) and the events.
        """
        cfg = self.cfg
        n_rows, kmax = len(users), cfg.max_events_per_session
        pairs = block.pairs(first)  # seen pairs of the active rows
        mix = self.users.intent_mix[users]  # (R, 4)
        intent = np.minimum((np.cumsum(mix, 1) < rng.random(n_rows)[:, None]).sum(1), 3)  # (R,)
        in_progress = np.bincount(pairs[0][pairs[2] == 1], minlength=n_rows) > 0  # (R,)
        alt = mix[:, 1:] / np.maximum(mix[:, 1:].sum(1, keepdims=True), 1e-12)  # (R, 3)
        alt_intent = 1 + np.minimum((np.cumsum(alt, 1) < rng.random(n_rows)[:, None]).sum(1), 2)
        intent = np.where((intent == _CONTINUE) & ~in_progress, alt_intent, intent)
        gmix = (1.0 - cfg.mood_explore) * self.users.genre_pref[users] + cfg.mood_explore / self.n_genres  # (R, G)
        mood_genre = np.minimum((np.cumsum(gmix, 1) < rng.random(n_rows)[:, None]).sum(1), self.n_genres - 1)
        k_pick = np.minimum(1 + rng.poisson(cfg.events_per_session - 1.0, n_rows), kmax)  # (R,)
        k_binge = np.minimum(1 + rng.poisson(cfg.binge_episodes - 1.0, n_rows), kmax)  # (R,)

        ev = _Step(
            title=np.full((n_rows, kmax), -1, dtype=np.int64), episode=np.zeros((n_rows, kmax), dtype=np.int64),
            oracle=np.zeros((n_rows, kmax, 4), dtype=np.int64), oracle_p=np.zeros((n_rows, kmax, 4)),
            oracle_rank=np.ones((n_rows, kmax), dtype=np.int64),
            action=np.zeros((n_rows, kmax), dtype=np.int64), fit=np.zeros((n_rows, kmax)),
            duration=np.zeros((n_rows, kmax)),
        )
        pick_p = np.zeros((n_rows, kmax))  # (R, k) probability mass of each non-continue pick
        rows_n = np.nonzero(intent != _CONTINUE)[0]
        rows_c = np.nonzero(intent == _CONTINUE)[0]
        draws = self._draw_picks(rng, users, block, first, pairs, t0, intent, mood_genre, k_pick, rows_n, ev, pick_p)
        cont = self._draw_continue(rng, users, block, first, pairs, t0, k_binge, rows_c, ev)

        # durations and times ------------------------------------------------------------------------------
        valid = ev.title >= 0  # (R, k)
        title = np.maximum(ev.title, 0)
        self._set_pick_episodes(block, first, ev, valid)
        item = self.item_start[title] + np.maximum(ev.episode, 1) - 1  # (R, k)
        fit = self._fit(users, title)  # (R, k)
        noise = cfg.completion_noise * rng.standard_normal(fit.shape)
        frac = np.clip(1.0 / (1.0 + np.exp(-(cfg.completion_bias + cfg.completion_fit_slope * fit + noise))), 0.02, 1.0)
        duration = np.where(valid, np.round(self.runtime[item] * frac, 2), 0.0)  # (R, k) minutes
        gap = 5 + np.round(rng.exponential(cfg.mean_gap_seconds, duration.shape))
        step_sec = np.where(valid, np.ceil(duration * 60.0) + gap, 0).astype(np.int64)  # (R, k)
        times = t0[:, None] + np.concatenate(
            [np.zeros((n_rows, 1), dtype=np.int64), np.cumsum(step_sec, 1)], axis=1
        )  # (R, k + 1)
        t_ev = times[:, :kmax]  # (R, k)

        # oracle of the recency label (needs the event times), then the new watch state -----------------------
        if draws is not None:
            self._recency_oracle_picks(draws, rows_n, ev, t_ev, pick_p)
        if cont is not None:
            self._recency_oracle_continue(cont, rows_c, ev, t_ev)
        self._update_state(block, first, ev, t_ev, valid)
        ev.fit, ev.duration = fit, duration
        return intent, times, ev

    def _weights(
        self, block: _Block, brows: np.ndarray, t0: np.ndarray, users: np.ndarray, intent: np.ndarray,
        mood_genre: np.ndarray, seen: tuple[np.ndarray, ...], exclude: np.ndarray,
    ) -> tuple[_Weights, np.ndarray]:
        """The sessions' item weights: static taste x intent factors, finished titles penalised, seen ones
        removed where ``exclude``.

        Args:
            block: the block.
            brows: (n,) block rows.
            t0: (n,) session starts.
            users: (n,) global user indices.
            intent: (n,) intent codes (not continue).
            mood_genre: (n,) session genre (used for genre_mood).
            seen: the rows' seen pairs (row 0..n-1, title, state), each (P,).
            exclude: (n,) remove seen titles (discover).

        Returns:
            The weights and the (n,) mass of the titles the user has seen (the ``repeat`` mass).
        """
        p = block.static[brows]  # (n, T) float32 copy
        disc = np.nonzero(intent == _DISCOVER)[0]
        p[disc] *= self.discover_tilt
        mood = np.nonzero(intent == _MOOD)[0]
        p[mood] *= self.mood_factor[mood_genre[mood]]
        boost = np.where(intent == _NEW, self.cfg.new_release_boost, 0.0)  # (n,)
        p[:, self.j0 :] *= self._young_factor(t0, users, boost)
        rr, tt, sv = seen
        pv = p[rr, tt]
        pv = np.where(exclude[rr], np.float32(0.0), np.where(sv == 2, pv * self.rewatch, pv))
        p[rr, tt] = pv
        repeat = np.bincount(rr, weights=pv, minlength=len(brows)).astype(np.float64)  # (n,)
        return _Weights(p, self), repeat

    def _draw_picks(
        self, rng: np.random.Generator, users: np.ndarray, block: _Block, first: int,
        pairs: tuple[np.ndarray, np.ndarray, np.ndarray], t0: np.ndarray, intent: np.ndarray,
        mood_genre: np.ndarray, k_pick: np.ndarray, rows: np.ndarray, ev: _Step, pick_p: np.ndarray,
    ) -> tuple[_Weights, np.ndarray] | None:
        """discover / genre_mood / new_release: distinct titles drawn from the session's probability vector."""
        if len(rows) == 0:
            return None
        g, n, kmax = self.n_genres, len(rows), self.cfg.max_events_per_session
        u, it, brows = users[rows], intent[rows], first + rows
        seen = _subset(pairs, rows, len(users))
        w, repeat_mass = self._weights(block, brows, t0[rows], u, it, mood_genre[rows], seen, it == _DISCOVER)
        stuck = np.nonzero(w.total <= 0)[0]  # discover with every released title seen: allow rewatches
        if len(stuck):
            w_s, rep_s = self._weights(
                block, brows[stuck], t0[rows][stuck], u[stuck], it[stuck], mood_genre[rows][stuck],
                _subset(seen, stuck, n), np.zeros(len(stuck), dtype=bool),
            )
            w.p[stuck] = w_s.p
            w, repeat_mass[stuck] = _Weights(w.p, self), rep_s
        p, total = w.p, w.total
        joint = w.joint_mass().reshape(n, g, 2)  # (n, G, 2)

        # sequential draws without replacement: redraw a slot until it differs from the session's earlier picks
        chosen = np.full((n, kmax), -1, dtype=np.int64)
        need = k_pick[rows].copy()
        for j in range(kmax):
            active = np.nonzero(need > j)[0]
            for _ in range(50):
                if len(active) == 0:
                    break
                d = w.draw(rng, active)
                dup = (chosen[active, :j] == d[:, None]).any(1)
                chosen[active[~dup], j] = d[~dup]
                active = active[dup]
            need[active] = j  # (rare) nothing new left to draw: the session ends here
        count = (chosen >= 0).sum(1)

        # oracle (action, genre, format) per pick: the session vector without the earlier picks
        genre_mass, format_mass = joint.sum(2), joint.sum(1)  # (n, G), (n, 2)
        rest, rep = total.copy(), repeat_mass.copy()
        row_idx = np.arange(n)
        for j in range(kmax):
            ok = j < count  # (n,)
            if not ok.any():
                break
            d = np.maximum(chosen[:, j], 0)
            pd = np.where(ok, p[row_idx, d].astype(np.float64), 0.0)  # (n,)
            pick_p[rows, j] = pd
            # item rank: titles more probable than the pick, the session's earlier picks removed (ties optimistic)
            above = p > p[row_idx, d][:, None]  # (n, T)
            earlier = chosen[:, :j]  # (n, j) distinct titles, all drawn
            higher = (above.sum(1) - above[row_idx[:, None], np.maximum(earlier, 0)].sum(1)).astype(np.int64)
            ev.oracle_rank[rows, j] = np.where(ok, 1 + higher, 1)
            denom = np.maximum(rest, 1e-300)
            new_mass = rest - rep
            ev.oracle[rows, j, 0] = (rep > new_mass).astype(np.int64)
            ev.oracle_p[rows, j, 0] = np.maximum(rep, new_mass) / denom
            ev.oracle[rows, j, 1] = genre_mass.argmax(1)
            ev.oracle_p[rows, j, 1] = genre_mass.max(1) / denom
            ev.oracle[rows, j, 2] = format_mass.argmax(1)
            ev.oracle_p[rows, j, 2] = format_mass.max(1) / denom
            seen_d = block.state[brows, d] > 0
            ev.action[rows, j] = seen_d.astype(np.int64)
            genre_mass[row_idx, self.genre[d]] -= pd
            format_mass[row_idx, self.is_show[d].astype(np.int64)] -= pd
            rep -= pd * seen_d
            rest -= pd
        ev.title[rows] = np.where(np.arange(kmax)[None, :] < count[:, None], chosen, -1)
        return w, chosen

    def _draw_continue(
        self, rng: np.random.Generator, users: np.ndarray, block: _Block, first: int,
        pairs: tuple[np.ndarray, np.ndarray, np.ndarray], t0: np.ndarray, k_binge: np.ndarray, rows: np.ndarray,
        ev: _Step,
    ) -> dict[str, np.ndarray] | None:
        """continue: one in-progress show, then its next episodes in order."""
        if len(rows) == 0:
            return None
        cfg, g, n = self.cfg, self.n_genres, len(rows)
        rr, tt, sv = _subset(pairs, rows, len(users))
        keep = sv == 1  # in-progress shows
        rr, tt = rr[keep], tt[keep]
        order = np.argsort(rr, kind="stable")  # grouped by row
        rr, tt = rr[order], tt[order]
        u = users[rows][rr]
        logit = np.einsum("pk,pk->p", self.users.features[u].astype(np.float64), self.features[tt].astype(np.float64))
        t_start = t0[rows][rr]  # (P,)
        age = (t_start - self.release[tt]) / _DAY
        logit += cfg.appetite_weight * self.users.appetite[u] * np.clip(1.0 - age / cfg.appetite_horizon_days, 0, None)
        since = (t_start - self.start_sec) / _DAY - block.last[first + rows[rr], tt]  # days since last watched
        logit += cfg.continue_recency_weight * np.exp(-since / cfg.continue_decay_days)
        begin = np.searchsorted(rr, np.arange(n), side="left")  # (n,) every row has >= 1 pair
        end = np.append(begin[1:], len(rr))
        top = np.maximum.reduceat(logit, begin)  # (n,)
        w = np.exp(logit - top[rr])  # (P,)
        cw = np.cumsum(w)
        base = np.where(begin > 0, cw[np.maximum(begin - 1, 0)], 0.0)  # (n,)
        total = cw[end - 1] - base  # (n,)
        v = base + rng.random(n) * total * (1.0 - 1e-9)
        pick = np.clip(np.searchsorted(cw, v, side="right"), begin, end - 1)  # (n,)
        show = tt[pick]  # (n,)
        # item rank of the first episode: in-progress shows more likely than the chosen one; later ones are certain
        ev.oracle_rank[rows, 0] = 1 + np.bincount(rr, weights=(w > w[pick][rr]).astype(np.float64), minlength=n).astype(np.int64)
        done = block.prog[first + rows, show].astype(np.int64)  # (n,) episodes already watched
        n_ev = np.minimum(k_binge[rows], self.n_eps[show] - done)  # (n,) >= 1
        steps = np.arange(cfg.max_events_per_session)[None, :]
        on = steps < n_ev[:, None]  # (n, k)
        ev.title[rows] = np.where(on, show[:, None], -1)
        ev.episode[rows] = np.where(on, done[:, None] + 1 + steps, 0)
        ev.action[rows] = 1
        # oracle of the first episode from the distribution over in-progress shows; later ones are certain
        genre_mass = np.bincount(rr * g + self.genre[tt], weights=w, minlength=n * g).reshape(n, g)
        format_mass = np.bincount(rr * 2 + self.is_show[tt], weights=w, minlength=n * 2).reshape(n, 2)
        ev.oracle[rows, :, 0] = 1
        ev.oracle_p[rows, :, 0] = 1.0
        ev.oracle[rows, 0, 1] = genre_mass.argmax(1)
        ev.oracle_p[rows, 0, 1] = genre_mass.max(1) / total
        ev.oracle[rows, 0, 2] = format_mass.argmax(1)
        ev.oracle_p[rows, 0, 2] = format_mass.max(1) / total
        ev.oracle[rows, 1:, 1] = self.genre[show][:, None]
        ev.oracle_p[rows, 1:, 1] = 1.0
        ev.oracle[rows, 1:, 2] = 1
        ev.oracle_p[rows, 1:, 2] = 1.0
        return {"rr": rr, "tt": tt, "w": w, "total": total, "show": show}

    def _recency_oracle_picks(
        self, draws: tuple[_Weights, np.ndarray], rows: np.ndarray, ev: _Step, t_ev: np.ndarray, pick_p: np.ndarray
    ) -> None:
        w, chosen = draws
        for j in range(chosen.shape[1]):
            on = np.nonzero(chosen[:, j] >= 0)[0]  # (m,) rows with a j-th pick
            if len(on) == 0:
                break
            t = t_ev[rows[on], j]  # (m,) the pick's time
            mass = self._buckets_from_before(w.total[on], self._before_mass(w, on, t))  # (m, E + 1)
            rest = w.total[on].copy()
            for jj in range(j):  # remove the session's earlier picks, in their bucket at time t
                pd = pick_p[rows[on], jj]
                mass[np.arange(len(on)), self.bucket(t, chosen[on, jj])] -= pd
                rest -= pd
            ev.oracle[rows[on], j, 3] = mass.argmax(1)
            ev.oracle_p[rows[on], j, 3] = mass.max(1) / np.maximum(rest, 1e-300)

    def _recency_oracle_continue(self, cont: dict[str, np.ndarray], rows: np.ndarray, ev: _Step, t_ev: np.ndarray) -> None:
        rr, tt, w, total, show = cont["rr"], cont["tt"], cont["w"], cont["total"], cont["show"]
        n, nb = len(rows), len(self.edges_days) + 1
        bucket = self.bucket(t_ev[rows][rr, 0], tt)  # (P,) at the first event's time
        mass = np.bincount(rr * nb + bucket, weights=w, minlength=n * nb).reshape(n, nb)
        ev.oracle[rows, 0, 3] = mass.argmax(1)
        ev.oracle_p[rows, 0, 3] = mass.max(1) / total
        later = self.bucket(t_ev[rows], np.broadcast_to(show[:, None], t_ev[rows].shape))  # (n, k)
        ev.oracle[rows, 1:, 3] = later[:, 1:]
        ev.oracle_p[rows, 1:, 3] = 1.0

    def _set_pick_episodes(self, block: _Block, first: int, ev: _Step, valid: np.ndarray) -> None:
        """Episodes of non-continue picks: the next one of a show, 1 when it was finished (restart); movies: 1."""
        r_idx, j_idx = np.nonzero(valid & (ev.episode == 0))
        d = ev.title[r_idx, j_idx]
        done = block.prog[first + r_idx, d].astype(np.int64)
        restart = (block.state[first + r_idx, d] == 2) | ~self.is_show[d]
        ev.episode[r_idx, j_idx] = np.where(restart, 1, done + 1)

    def _update_state(self, block: _Block, first: int, ev: _Step, t_ev: np.ndarray, valid: np.ndarray) -> None:
        r_idx, j_idx = np.nonzero(valid)  # row-major: a row's events in order
        d, ep = ev.title[r_idx, j_idx], ev.episode[r_idx, j_idx]
        # write once per (row, title): a continue session's last episode (picks are distinct titles)
        nxt = np.append(ev.title[:, 1:], np.full((len(ev.title), 1), -1), axis=1)[r_idx, j_idx]
        final = nxt != d
        b_w, d_w, ep_w = first + r_idx[final], d[final], ep[final]
        new = block.state[b_w, d_w] == 0
        block.seen_rows = np.concatenate([block.seen_rows, b_w[new]])
        block.seen_titles = np.concatenate([block.seen_titles, d_w[new]])
        block.prog[b_w, d_w] = ep_w.astype(np.int16)
        block.state[b_w, d_w] = np.where(ep_w >= self.n_eps[d_w], 2, 1).astype(np.int8)
        block.last[b_w, d_w] = ((t_ev[r_idx[final], j_idx[final]] - self.start_sec) / _DAY).astype(np.float32)


def _blocks(cfg: SimConfig, n_titles: int, n_sessions: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    order = np.argsort(n_sessions, kind="stable")  # similar activity per block: few idle lockstep rows
    size = max(64, cfg.block_elements // max(n_titles, 1))
    bounds = [(b, min(b + size, len(order))) for b in range(0, len(order), size)]
    return order, bounds


def simulate(cfg: SimConfig, progress: Callable[[int, int], None] | None = None) -> SimulatedLog:
    """Generate a log (deterministic given ``cfg``, including ``cfg.seed``).

    Args:
        cfg: the configuration (e.g. ``SimConfig.preset("small", seed=1)``).
        progress: called as ``progress(users_done, n_users)`` after each block of users.

    Returns:
        The events (N rows, sorted by user then time), the catalogue items and the config.
    """
    return simulate_shard(cfg, 0, 1, progress)


def simulate_shard(
    cfg: SimConfig, shard: int, n_shards: int, progress: Callable[[int, int], None] | None = None
) -> SimulatedLog:
    """Generate the users of one shard of a log too large to hold in memory at once.

    The catalogue (``items``) is the same in every shard; shard ``k`` of ``n_shards`` holds users
    ``[k * n_users // n_shards, (k + 1) * n_users // n_shards)`` with ids numbered as in the whole log, and
    their own seeds (shard 0 of 1 is :func:`simulate`). Concatenated, the shards form one log with ``cfg.n_users``
    users; it is not the log :func:`simulate` would draw for the same config in one go.

    Args:
        cfg: the configuration of the whole log.
        shard: which shard, ``0 <= shard < n_shards``.
        n_shards: number of shards.
        progress: called as ``progress(users_done, users_in_shard)`` after each block of users.

    Returns:
        The shard's events (sorted by user then time) with the full catalogue; ``config`` is ``cfg``.

    Raises:
        ConfigError: ``shard`` is out of range or a shard would have no users.
    """
    if not 0 <= shard < n_shards or n_shards > cfg.n_users:
        raise ConfigError(f"shard {shard} of {n_shards}: need 0 <= shard < n_shards <= n_users ({cfg.n_users})")
    seeds = np.random.SeedSequence(cfg.seed).spawn(3)
    user_seeds = seeds[1:] if shard == 0 else np.random.SeedSequence(cfg.seed, spawn_key=(2 + shard,)).spawn(2)
    lo, hi = shard * cfg.n_users // n_shards, (shard + 1) * cfg.n_users // n_shards
    part = cfg if n_shards == 1 else cfg.model_copy(update={"n_users": hi - lo})
    cat = _catalogue(cfg, np.random.default_rng(seeds[0]))
    users = _users(part, cat, np.random.default_rng(user_seeds[0]))
    sim = _Simulator(part, cat, users)
    n_sessions = np.diff(users.session_offsets)  # (U,)
    order, bounds = _blocks(cfg, sim.n_titles, n_sessions)
    block_seeds = user_seeds[1].spawn(len(bounds))
    parts: list[dict[str, np.ndarray]] = []
    for (b0, b1), seed in zip(bounds, block_seeds, strict=True):
        rng = np.random.default_rng(seed)
        block_users = order[b0:b1]  # (B,) ascending session counts
        block = sim.block(block_users)
        t_free = np.zeros(len(block_users), dtype=np.int64)
        counts = n_sessions[block_users]
        for s in range(int(counts.max())):
            first = int(np.searchsorted(counts, s, side="right"))  # rows [first, B) have a session s
            u = block_users[first:]
            t0 = np.maximum(users.session_start[users.session_offsets[u] + s], t_free[first:])  # (R,)
            intent, times, ev = sim.step(rng, u, block, first, t0)
            valid = ev.title >= 0  # (R, k)
            t_free[first:] = times[np.arange(len(u)), valid.sum(1)] + 1  # after the session's end
            r_idx, j_idx = np.nonzero(valid)
            d = ev.title[r_idx, j_idx]
            t_ev = times[r_idx, j_idx]
            parts.append({
                "user": u[r_idx].astype(np.int64),
                "session": np.full(len(r_idx), s, dtype=np.int64),
                "item": sim.item_start[d] + ev.episode[r_idx, j_idx] - 1,
                "timestamp": t_ev,
                "duration": ev.duration[r_idx, j_idx],
                "fit": ev.fit[r_idx, j_idx],
                "intent": intent[r_idx],
                "label": np.stack(
                    [ev.action[r_idx, j_idx], sim.genre[d], sim.is_show[d].astype(np.int64), sim.bucket(t_ev, d)],
                    axis=1,
                ),
                "oracle": ev.oracle[r_idx, j_idx],
                "oracle_p": ev.oracle_p[r_idx, j_idx],
                "oracle_rank": ev.oracle_rank[r_idx, j_idx],
            })
        if progress is not None:
            progress(b1, part.n_users)
    events = _events_frame(cfg, cat, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, lo, hi)
    return SimulatedLog(events=events, items=cat.items, config=cfg)


def _events_frame(cfg: SimConfig, cat: _Catalogue, cols: dict[str, np.ndarray], first: int, end: int) -> pl.DataFrame:
    order = np.lexsort((cols["timestamp"], cols["user"]))
    cols = {k: v[order] for k, v in cols.items()}
    width = max(4, len(str(cfg.n_users - 1)))
    user_names = pl.Series([f"u{i:0{width}d}" for i in range(first, end)], dtype=pl.String)
    user_id = user_names.gather(pl.Series(cols["user"]))
    vocab = {
        "action": pl.Series(ACTION_LABELS), "genre": pl.Series(cfg.genres), "format": pl.Series(FORMAT_LABELS),
        "recency": pl.Series(cfg.recency_labels),
    }
    data: dict[str, pl.Series] = {
        "user_id": user_id,
        "item_id": cat.items["item_id"].gather(pl.Series(cols["item"])),
        "timestamp": pl.Series(cols["timestamp"].astype(np.int64)),
        "duration": pl.Series(cols["duration"].astype(np.float64)),
        "session_id": pl.select(
            pl.concat_str([user_id, pl.lit("-"), pl.Series(cols["session"]).cast(pl.String).str.zfill(4)])
        ).to_series(),
        "true_intent": pl.Series(TRUE_INTENTS).gather(pl.Series(cols["intent"])),
        "fit": pl.Series(np.round(cols["fit"], 4)),
    }
    for k, name in enumerate(SIM_INTENTS):
        data[f"label_{name}"] = vocab[name].gather(pl.Series(cols["label"][:, k]))
    for k, name in enumerate(SIM_INTENTS):
        data[f"oracle_{name}"] = vocab[name].gather(pl.Series(cols["oracle"][:, k]))
        data[f"oracle_{name}_p"] = pl.Series(np.clip(cols["oracle_p"][:, k], 0.0, 1.0))
    data["oracle_item_rank"] = pl.Series(cols["oracle_rank"].astype(np.int64))
    return pl.DataFrame(data)


# ----------------------------------------------------------------------------------------------------------
# ceilings, files
# ----------------------------------------------------------------------------------------------------------


def _check_columns(events: pl.DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in events.columns]
    if missing:
        raise DataError(
            f"{what}: the events frame lacks columns {missing} (columns: {events.columns}); pass "
            "SimulatedLog.events as simulate() or read_simulation() returns it"
        )


def _ceiling_columns() -> list[str]:
    cols = ["true_intent"]
    for name in SIM_INTENTS:
        cols += [f"label_{name}", f"oracle_{name}"]
    return cols


def _ceilings(frame: pl.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    n = frame.height
    for name in SIM_INTENTS:
        out[name] = float((frame[f"oracle_{name}"] == frame[f"label_{name}"]).mean() or 0.0)
    for name in SIM_INTENTS:
        top = frame[f"label_{name}"].value_counts(sort=True)
        out[f"majority_{name}"] = float(top["count"][0]) / n if n else 0.0
    shares = frame["true_intent"].value_counts()
    counts = dict(zip(shares["true_intent"].to_list(), shares["count"].to_list(), strict=True))
    for name in TRUE_INTENTS:
        out[f"share_{name}"] = counts.get(name, 0) / n if n else 0.0
    return out


def intent_ceilings(
    events: pl.DataFrame,
    user_ids: Sequence[str] | np.ndarray | pl.Series,
    timestamps: Sequence[float] | np.ndarray | pl.Series,
) -> dict[str, float]:
    """Oracle accuracy (the best achievable knowing the latent state) on the events with the given keys.

    Args:
        events: ``SimulatedLog.events``.
        user_ids: (n,) raw user ids of the evaluated target events.
        timestamps: (n,) their timestamps in seconds (floats are rounded; a user's timestamps are unique).

    Returns:
        ``{intent: oracle accuracy}`` for each of :data:`SIM_INTENTS`; ``majority_<intent>``: the accuracy of
        always predicting the most frequent realised label among these events (an optimistic constant baseline);
        ``share_<true intent>``: the share of each of :data:`TRUE_INTENTS` among them.

    Raises:
        DataError: the lengths differ, no key is given, ``events`` lacks the simulator's columns, or some keys
            match no event (the message says how many).

    Example:
        >>> log = simulate(SimConfig.preset("tiny"))
        >>> c = intent_ceilings(log.events, log.events["user_id"], log.events["timestamp"])
        >>> all(c[k] >= c[f"majority_{k}"] for k in SIM_INTENTS)
        True
    """
    return _ceilings(_matched(events, user_ids, timestamps, _ceiling_columns(), "intent_ceilings"))


def _matched(
    events: pl.DataFrame, user_ids: Sequence[str] | np.ndarray | pl.Series,
    timestamps: Sequence[float] | np.ndarray | pl.Series, columns: list[str], what: str,
) -> pl.DataFrame:
    """``columns`` of the events with the given (user_id, timestamp) keys, in the keys' order."""
    users = [str(u) for u in (user_ids.to_list() if isinstance(user_ids, pl.Series) else list(user_ids))]
    times = np.asarray(timestamps.to_numpy() if isinstance(timestamps, pl.Series) else timestamps, dtype=np.float64)
    if len(users) != len(times):
        raise DataError(f"{what}: {len(users)} user ids but {len(times)} timestamps; pass one per event")
    if not users:
        raise DataError(f"{what}: no keys given; pass the (user_id, timestamp) of the evaluated events")
    if not np.isfinite(times).all():
        raise DataError(f"{what}: timestamps must be finite seconds since the epoch")
    _check_columns(events, ["user_id", "timestamp", *columns], what)
    keys = pl.DataFrame({"user_id": users, "timestamp": np.rint(times).astype(np.int64), "_key": np.arange(len(users))})
    table = events.select(["user_id", pl.col("timestamp").cast(pl.Int64), *columns])
    joined = keys.join(table.with_columns(pl.lit(True).alias("_hit")), on=["user_id", "timestamp"], how="left")
    if joined.height != keys.height:
        raise DataError(f"{what}: the events frame has duplicate (user_id, timestamp) keys; is it simulated?")
    unmatched = int(joined["_hit"].is_null().sum())
    if unmatched:
        first = joined.filter(pl.col("_hit").is_null()).row(0, named=True)
        raise DataError(
            f"{what}: {unmatched} of {keys.height} (user_id, timestamp) keys match no simulated event "
            f"(first: user {first['user_id']!r} at {first['timestamp']}); pass keys of this log's events (after "
            "any cleaning that keeps timestamps unchanged) and the matching SimulatedLog.events"
        )
    return joined.sort("_key")


def item_ceiling(
    events: pl.DataFrame,
    user_ids: Sequence[str] | np.ndarray | pl.Series,
    timestamps: Sequence[float] | np.ndarray | pl.Series,
    k: int = 10,
) -> dict[str, float]:
    """The item-ranking ceiling: the metrics of a ranker that knows the latent state (the session intent, its genre,
    the watch state) and ranks every item by the generator's own probability, on the events with the given keys.

    No model that sees only the log can beat it in expectation; it is the reference for the non-``continue``
    sessions, where even this ranker rarely puts the pick first (each pick is a draw from a taste softmax over the
    catalogue). Ranks count ties in the pick's favour, so the ceiling is an upper bound.

    Args:
        events: ``SimulatedLog.events`` (with ``oracle_item_rank``).
        user_ids: (n,) raw user ids of the evaluated target events.
        timestamps: (n,) their timestamps in seconds.
        k: the cut-off of HR@k and NDCG@k.

    Returns:
        ``{"hr@k": ..., "ndcg@k": ..., "mrr": ...}`` averaged over the events (the evaluator's definitions: one
        relevant item, NDCG@k = 1 / log2(rank + 1) within the top k; MRR without a cut-off).

    Raises:
        DataError: as :func:`intent_ceilings`, or ``k`` < 1.

    Example:
        >>> log = simulate(SimConfig.preset("tiny"))
        >>> c = item_ceiling(log.events, log.events["user_id"], log.events["timestamp"])
        >>> 0 < c["mrr"] <= 1 and c["ndcg@10"] <= c["hr@10"]
        True
    """
    if k < 1:
        raise DataError(f"item_ceiling: k must be >= 1, got {k}")
    rank = _matched(events, user_ids, timestamps, ["oracle_item_rank"], "item_ceiling")["oracle_item_rank"]
    return rank_metrics(rank.to_numpy(), k)


def rank_metrics(rank: np.ndarray, k: int = 10) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of 1-based ranks of the single relevant item (one per event).

    Example:
        >>> {m: round(v, 4) for m, v in rank_metrics(np.array([1, 3, 11]), k=10).items()}
        {'hr@10': 0.6667, 'ndcg@10': 0.5, 'mrr': 0.4747}
    """
    r = np.asarray(rank, dtype=np.float64)  # (n,)
    if r.size == 0 or (r < 1).any():
        raise DataError("rank_metrics: pass one or more 1-based ranks")
    top = r <= k
    return {
        f"hr@{k}": float(top.mean()),
        f"ndcg@{k}": float(np.where(top, 1.0 / np.log2(r + 1.0), 0.0).mean()),
        "mrr": float((1.0 / r).mean()),
    }



def _readme(log: SimulatedLog) -> str:
    cfg = log.config
    ev = log.events
    ceil = _ceilings(ev)
    intent_rows = "\n".join(
        f"| {name} | {', '.join(f'`{x}`' for x in labels)} | {ceil[name]:.3f} | {ceil[f'majority_{name}']:.3f} |"
        for name, labels in (
            ("action", ACTION_LABELS), ("genre", cfg.genres), ("format", FORMAT_LABELS), ("recency", cfg.recency_labels),
        )
    )
    shares = ", ".join(f"`{k}` {ceil[f'share_{k}']:.3f}" for k in TRUE_INTENTS)
    items = ", ".join(f"{m} {v:.3f}" for m, v in rank_metrics(ev["oracle_item_rank"].to_numpy()).items())
    doc = (__doc__ or "").split("Example:")[0].strip().replace(":data:", "").replace(":func:", "")
    return f"""# Simulated streaming log `streaming_sim-{cfg.label}`

Generated by `intentrec.datasets.streaming_sim.simulate` (seeded: the config below regenerates it exactly).
{ev.height} events, {ev["user_id"].n_unique()} users, {log.items.height} items
({int((log.items["format"] == "movie").sum())} movies, {log.items["show_id"].n_unique() - int((log.items["format"] == "movie").sum())} shows).

## What the generator does

{doc}

## Files

* `events.parquet`: one row per play, sorted by user then time (timestamps strictly increase per user).
* `items.parquet`: one row per movie or episode.
* `config.json`: the `SimConfig` (also below). `README.md`: this file.

### `events.parquet`

| column | type | meaning |
|---|---|---|
| `user_id` | str | user (`u0001`, ...) |
| `item_id` | str | movie (`m00012`) or episode (`s00034e05`) |
| `timestamp` | int | start of the play, seconds since 1970-01-01 UTC |
| `duration` | float | minutes watched (runtime × fraction watched; the fraction grows with `fit`) |
| `session_id` | str | `<user_id>-<session number>` |
| `true_intent` | str | latent session intent: {", ".join(f"`{x}`" for x in TRUE_INTENTS)} |
| `fit` | float | taste match of the user and the title (genre, format, latent), centred per user |
| `label_<intent>` | str | realised label of the event for `action`, `genre`, `format`, `recency` |
| `oracle_<intent>` | str | generator's prediction of that label before the item was drawn |
| `oracle_<intent>_p` | float | its probability under the step's item-probability vector |
| `oracle_item_rank` | int | rank of the played item under that vector (1 = most probable): the item-level ceiling |

### `items.parquet`

| column | type | meaning |
|---|---|---|
| `item_id` | str | movie id, or `<show_id>e<episode>` |
| `title` | str | display title (`<show title>: Episode <n>` for episodes) |
| `genre` | str | primary genre |
| `format` | str | `movie` or `show` |
| `show_id` | str | the show of an episode; the movie's own `item_id` for movies |
| `episode` | int | episode number (1 for movies) |
| `n_episodes` | int | episodes of the show (1 for movies) |
| `release_date` | date | release day (all episodes of a show on the same day) |
| `runtime` | float | minutes |
| `popularity` | float | popularity prior (standard normal) |

## Labels and ceilings

The pipeline derives the same labels (intents `action`: repeat on `show_id`, `genre`/`format`: categorical,
`recency`: recency on `release_date` with buckets {list(cfg.recency_buckets_days)} days).
Oracle accuracy over all events, next to always predicting the most frequent label:

| intent | labels | oracle | majority |
|---|---|---|---|
{intent_rows}

True-intent shares: {shares}.

Item-ranking ceiling over all events (every item ranked by the generator's probability, knowing the latent state;
`item_ceiling`): {items}.

## Config

```json
{cfg.model_dump_json(indent=2)}
```
"""


def write_simulation(log: SimulatedLog, folder: str | Path) -> Path:
    """Write ``events.parquet``, ``items.parquet``, ``config.json`` and ``README.md`` into ``folder``.

    Args:
        log: what :func:`simulate` returned.
        folder: the output folder (created when missing; existing files of these names are replaced).

    Returns:
        The folder.

    Raises:
        DataError: the folder cannot be created or written.
    """
    out = Path(folder).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        log.events.write_parquet(out / "events.parquet")
        log.items.write_parquet(out / "items.parquet")
        (out / "config.json").write_text(log.config.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (out / "README.md").write_text(_readme(log), encoding="utf-8")
    except OSError as err:
        raise DataError(f"cannot write the simulation to {out}: {err}") from None
    return out


def write_sharded_simulation(
    cfg: SimConfig, folder: str | Path, n_shards: int, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Simulate a log shard by shard (:func:`simulate_shard`), holding one shard in memory at a time.

    Writes ``events/part-<k>.parquet`` (one per shard, users in id order across the parts), ``items.parquet``,
    ``config.json`` (``cfg``) and a short ``README.md``; :func:`read_simulation` and the ``streaming_sim`` adapter
    read the folder like one written by :func:`write_simulation`.

    Args:
        cfg: the configuration of the whole log.
        folder: the output folder (created when missing; an existing ``events.parquet`` or ``events/`` is replaced).
        n_shards: number of shards (e.g. ``ceil(expected events / 2.5M)`` keeps a shard near 1.5 GB of memory).
        progress: called as ``progress(shards_done, n_shards)`` after each shard.

    Returns:
        The folder.

    Raises:
        ConfigError: ``n_shards`` is not in ``[1, n_users]``.
        DataError: the folder cannot be written.
    """
    if not 1 <= n_shards <= cfg.n_users:
        raise ConfigError(f"n_shards = {n_shards}: need 1 <= n_shards <= n_users ({cfg.n_users})")
    out = Path(folder).expanduser()
    parts = out / SIM_SHARD_FOLDER
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "events.parquet").unlink(missing_ok=True)
        if parts.is_dir():
            for old in parts.glob("*.parquet"):
                old.unlink()
        parts.mkdir(exist_ok=True)
        n_events = 0
        items: pl.DataFrame | None = None
        for k in range(n_shards):
            log = simulate_shard(cfg, k, n_shards)
            log.events.write_parquet(parts / f"part-{k:05d}.parquet")
            n_events += log.events.height
            items = log.items
            del log
            if progress is not None:
                progress(k + 1, n_shards)
        if items is not None:
            items.write_parquet(out / "items.parquet")
        (out / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (out / "README.md").write_text(
            f"# Simulated streaming log `streaming_sim-{cfg.label}` ({n_shards} shards)\n\n"
            f"Generated by `intentrec.datasets.streaming_sim.write_sharded_simulation`: {n_events} events, "
            f"{cfg.n_users} users in `{SIM_SHARD_FOLDER}/part-*.parquet` (columns as in `write_simulation`), "
            "the catalogue in `items.parquet`, the config in `config.json`.\n",
            encoding="utf-8",
        )
    except OSError as err:
        raise DataError(f"cannot write the simulation to {out}: {err}") from None
    return out


def simulation_event_files(folder: str | Path) -> list[Path]:
    """The event files of a simulation folder: ``[events.parquet]``, or the sorted ``events/*.parquet`` shards.

    Raises:
        DataError: the folder has neither.
    """
    root = Path(folder).expanduser()
    if (root / "events.parquet").is_file():
        return [root / "events.parquet"]
    shards = sorted((root / SIM_SHARD_FOLDER).glob("*.parquet")) if (root / SIM_SHARD_FOLDER).is_dir() else []
    if not shards:
        raise DataError(
            f"{root}: missing events.parquet (or {SIM_SHARD_FOLDER}/*.parquet shards); a simulation folder holds "
            f"{list(SIM_FILES)} (write_simulation or write_sharded_simulation)"
        )
    return shards


def read_simulation(folder: str | Path) -> SimulatedLog:
    """Read a folder written by :func:`write_simulation` or :func:`write_sharded_simulation` (whole, in memory).

    Raises:
        DataError: the folder or one of :data:`SIM_FILES` is missing or unreadable.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; point at a folder written by write_simulation()")
    missing = [name for name in SIM_FILES[1:] if not (root / name).is_file()]
    if missing:
        raise DataError(f"{root}: missing {missing}; a simulation folder holds {list(SIM_FILES)} (write_simulation)")
    files = simulation_event_files(root)
    try:
        config = SimConfig.model_validate(json.loads((root / "config.json").read_text(encoding="utf-8")))
        events = pl.read_parquet(files)
        items = pl.read_parquet(root / "items.parquet")
    except (OSError, json.JSONDecodeError, ValidationError, pl.exceptions.PolarsError) as err:
        raise DataError(f"cannot read the simulation in {root}: {err}") from None
    return SimulatedLog(events=events, items=items, config=config)


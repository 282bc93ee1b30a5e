"""Typed, frozen, validated configuration (pydantic v2), loaded from YAML or TOML.

One :class:`ExperimentConfig` holds a section per stage: ``data``, ``model``, ``train``, ``eval``.
Unknown keys and bad values raise :class:`~intentrec.errors.ConfigError` naming the key path.
Data-derived sizes (catalogue size, label counts) are *not* here: they travel in
:class:`intentrec.structs.DataSpec`.

This module imports neither torch nor polars.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from intentrec.errors import ConfigError

__all__ = [
    "CleanConfig",
    "ColumnMap",
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "FeatureConfig",
    "IntentConfig",
    "ModelConfig",
    "SessionConfig",
    "SourceConfig",
    "SplitConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "parse_duration",
]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hour|hours|d|day|days|w|week|weeks|mo|month|months|y|year|years)\s*$")
_UNIT_SECONDS = {
    "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
    "mo": 2592000, "month": 2592000, "months": 2592000,
    "y": 31536000, "year": 31536000, "years": 31536000,
}


def parse_duration(value: str | float | int | None) -> float | None:
    """Parse a time span such as ``"1w"``, ``"30d"``, ``"1 month"``, ``3600`` (seconds) or ``"off"``.

    Args:
        value: a number of seconds, a string with a unit (s, min, h, d, w, month = 30 d, y = 365 d),
            or ``"off"`` / ``None`` for "disabled".

    Returns:
        The span in seconds, or ``None`` when disabled.

    Raises:
        ValueError: the string is not a recognised span.

    Example:
        >>> parse_duration("1w")
        604800.0
        >>> parse_duration("off") is None
        True
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a time span such as '1w' or 'off', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"a time span must be positive and finite, got {value!r}")
        return float(value)
    text = str(value).strip().lower()
    if text in {"off", "none", "null", ""}:
        return None
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(
            f"cannot parse time span {value!r}: use a number and a unit, e.g. '30min', '1w', '30d', '1 month', or 'off'"
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a time span must be positive, got {value!r}")
    return seconds


def _numeric_types(annotation: Any) -> tuple[set[Any], bool]:
    """The member types of a field annotation (``int | None`` -> {int, None}), and whether it is a tuple of them."""
    if typing.get_origin(annotation) is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        inner: set[Any] = set()
        for a in args:
            inner |= _numeric_types(a)[0]
        return inner, True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {type(None) if a is type(None) else a for a in typing.get_args(annotation)}, False
    return {annotation}, False


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_finite_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # number-only fields: YAML `yes`/`true` is not a number, and NaN/inf are never valid settings
        name = info.field_name or ""
        kinds, is_tuple = _numeric_types(cls.model_fields[name].annotation)
        if not kinds or not kinds <= {int, float, type(None)}:
            return v
        values = v if is_tuple and isinstance(v, list | tuple) else [v]
        for x in values:
            if isinstance(x, bool):
                raise ValueError("expected a number, not a yes/no value")
            if isinstance(x, float) and not math.isfinite(x):
                raise ValueError("must be a finite number (NaN and infinity are not settings)")
        return v


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------


class ColumnMap(_Frozen):
    """Names of the interaction-log columns in *your* file (only used by the ``table`` adapter)."""

    user_id: str = "user_id"
    """Column holding the user (or member/profile) id. Any type; ids need not be dense integers."""
    item_id: str = "item_id"
    """Column holding the item id."""
    timestamp: str | None = "timestamp"
    """Column holding the event time; ``null`` when the log only has an order (rows are taken in file order)."""
    timestamp_unit: Literal["s", "ms", "us", "ns", "datetime"] = "s"
    """Unit of numeric timestamps; ``datetime`` for ISO-8601 strings or native datetime columns."""
    action: str | None = None
    """Optional column with the action/event type (play, click, add-to-cart, ...)."""
    duration: str | None = None
    """Optional engagement column (watch seconds, dwell time, rating) used as the loss weight d_k."""
    session_id: str | None = None
    """Optional explicit session id; without it sessions are cut at an inactivity gap."""

    @model_validator(mode="after")
    def _check(self) -> ColumnMap:
        used: dict[str, str] = {}
        for key in ("user_id", "item_id", "timestamp", "action", "duration", "session_id"):
            column = getattr(self, key)
            if column is None:
                continue
            if not column.strip():
                raise ValueError(f"{key} must name a column (got an empty name); use null for an absent column")
            if column in used:
                raise ValueError(f"{key} names column {column!r}, which {used[column]} already names; map each "
                                 "field to its own column")
            used[column] = key
        return self


class SourceConfig(_Frozen):
    """Where the interactions (and item metadata) come from."""

    adapter: Literal["movielens", "s3rec", "trivago", "table", "streaming_sim"] = "movielens"
    """Built-in reader: ``movielens`` (ml-latest(-small) CSVs, ml-100k, ml-1m/10m), ``s3rec`` (Amazon/Yelp/LastFM
    benchmark files), ``trivago`` (RecSys Challenge 2019 logs), ``table`` (any CSV/TSV/Parquet/JSONL file), or
    ``streaming_sim`` (the simulated streaming log of ``intentrec.datasets.streaming_sim``: ``path`` = a folder
    written by ``write_simulation``, or ``null`` to generate preset ``name`` in memory: ``tiny``, ``small`` (the
    default), ``medium``, ``large``, optionally with a seed such as ``small@seed=3``)."""
    path: str | None = None
    """File or folder to read. ``null`` with ``movielens`` reads the bundled ml-latest-small copy; ``null`` with
    ``streaming_sim`` generates the preset ``name`` in memory (a folder from ``write_simulation`` is read instead)."""
    name: str | None = None
    """Dataset name inside ``path`` for ``s3rec`` (``Beauty``, ``Sports_and_Outdoors``, ``Yelp``, ``LastFM``);
    ``streaming_sim`` preset (``tiny``, ``small``, ``medium``, ``large``, optionally ``small@seed=3``)."""
    items_path: str | None = None
    """``table`` adapter: optional item-metadata file (CSV/TSV/Parquet/JSONL) keyed by ``item_columns_id``."""
    item_columns_id: str = "item_id"
    """``table`` adapter: the item-id column of the item-metadata file."""
    columns: ColumnMap = ColumnMap()
    """``table`` adapter: your column names."""
    multi_value_separator: str = "|"
    """Separator of multi-valued string attributes (e.g. ``Action|Comedy``)."""
    multi_valued: tuple[str, ...] = ()
    """``table`` adapter: item/interaction columns that hold several values joined by the separator."""
    date_columns: tuple[str, ...] = ()
    """``table`` adapter: item columns holding dates (release date); parsed to seconds since the epoch."""

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if not self.multi_value_separator:
            raise ValueError("multi_value_separator must not be empty (e.g. '|' for 'Action|Comedy')")
        if "\n" in self.multi_value_separator or "\r" in self.multi_value_separator:
            raise ValueError("multi_value_separator must not contain a line break")
        for key in ("multi_valued", "date_columns"):
            names = getattr(self, key)
            dupes = sorted({c for c in names if names.count(c) > 1})
            if dupes:
                raise ValueError(f"{key} lists {dupes} more than once")
        both = sorted(set(self.multi_valued) & set(self.date_columns))
        if both:
            raise ValueError(f"multi_valued and date_columns both list {both}; a column is either a list or a date")
        return self


class CleanConfig(_Frozen):
    """Cleaning applied after reading, before sessions, labels and splits."""

    dedupe: bool = True
    """Drop exact duplicate events (same user, item, timestamp and action); the count is reported."""
    k_core: int = 0
    """Iteratively keep users and items with at least ``k_core`` events (0 = off)."""
    min_events_per_user: int = 2
    """Drop users with fewer events (a user needs an input and a target)."""
    max_events_per_user: int | None = None
    """Keep only each user's latest ``n`` events (PAPER §1 "the latest n interactions"); ``null`` keeps all."""

    @field_validator("k_core", "min_events_per_user")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("max_events_per_user")
    @classmethod
    def _positive_or_none(cls, v: int | None) -> int | None:
        if v is not None and v < 2:
            raise ValueError("must be >= 2 or null")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CleanConfig:
        if self.max_events_per_user is not None and self.min_events_per_user > self.max_events_per_user:
            raise ValueError(
                f"min_events_per_user ({self.min_events_per_user}) is above max_events_per_user "
                f"({self.max_events_per_user}): every user would be dropped; lower it or raise max_events_per_user"
            )
        return self


class SessionConfig(_Frozen):
    """How events are grouped into sessions (used for statistics, repeat labels and analysis)."""

    gap: str | float = "30min"
    """Inactivity gap that starts a new session when the data has no session id (e.g. ``30min``)."""

    @field_validator("gap")
    @classmethod
    def _check_gap(cls, v: str | float) -> str | float:
        if parse_duration(v) is None:
            raise ValueError("the session gap cannot be 'off'")
        return v


class IntentConfig(_Frozen):
    """One intent: a label of the *next* interaction that the model predicts (PAPER §1 "Intents")."""

    name: str
    """Name of the intent head (``action``, ``genre``, ``format``, ``recency``, ``repeat``, ...)."""
    kind: Literal["categorical", "multi_label", "recency", "repeat"]
    """``categorical``: one label per event from ``column``; ``multi_label``: several labels (e.g. genres);
    ``recency``: bucketed time since the item's release at interaction time; ``repeat``: whether the item (or its
    series) was engaged with before by the same user (``repeat``) or not (``new``)."""
    column: str | None = None
    """Source column: an interaction or item attribute (categorical/multi_label) or the item's release-date column
    (recency). Unused for ``repeat``."""
    buckets_days: tuple[float, ...] = (7.0, 30.0, 365.0)
    """``recency`` bucket edges in days; the default gives <=7 d, 7-30 d, 30-365 d, >365 d (PAPER §10 #14)."""
    series_column: str | None = None
    """``repeat``: optional item attribute that groups items (e.g. the show of an episode)."""
    min_count: int = 1
    """Labels seen fewer times in the *training* data fold into ``other``."""
    max_labels: int | None = None
    """Keep at most this many of the most frequent training labels; the rest fold into ``other``."""
    as_feature: bool = True
    """Also use the attribute of each *input* interaction as an input feature (PAPER §3.2 "used as both")."""

    @model_validator(mode="after")
    def _check(self) -> IntentConfig:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"name {self.name!r} must be an identifier (letters, digits, underscore)")
        if self.kind in {"categorical", "multi_label", "recency"} and not self.column:
            raise ValueError(f"column missing: intent {self.name!r} of kind {self.kind!r} needs 'column'")
        if self.kind == "repeat" and self.column is not None:
            raise ValueError(f"column is unused by the repeat intent {self.name!r}; to group items (e.g. the "
                             "episodes of a show) set series_column instead")
        if self.kind != "repeat" and self.series_column is not None:
            raise ValueError(f"series_column is only used by intents of kind 'repeat', not {self.kind!r}")
        if self.kind != "recency" and self.buckets_days != IntentConfig.model_fields["buckets_days"].default:
            raise ValueError(f"buckets_days is only used by intents of kind 'recency', not {self.kind!r}")
        if self.kind == "recency":
            edges = self.buckets_days
            if not edges or any(b <= 0 for b in edges) or list(edges) != sorted(set(edges)):
                raise ValueError("buckets_days must be positive and strictly increasing")
        if self.min_count < 1:
            raise ValueError("min_count must be >= 1")
        if self.max_labels is not None and self.max_labels < 1:
            raise ValueError("max_labels must be >= 1 or null")
        return self


class FeatureConfig(_Frozen):
    """Input features besides the item id and the intent attributes."""

    categorical: tuple[str, ...] = ()
    """Interaction or item columns embedded as inputs; multi-valued ones are mean-pooled (PAPER §2)."""
    numeric: tuple[str, ...] = ()
    """Numeric interaction or item columns, min-max normalised to [0, 1] with *training* statistics."""

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        for key in ("categorical", "numeric"):
            names = getattr(self, key)
            dupes = sorted({c for c in names if names.count(c) > 1})
            if dupes:
                raise ValueError(f"{key} lists {dupes} more than once")
        both = sorted(set(self.categorical) & set(self.numeric))
        if both:
            raise ValueError(f"categorical and numeric both list {both}; a feature is one or the other")
        return self


class SplitConfig(_Frozen):
    """Evaluation protocol (EVALUATION.md)."""

    protocol: Literal["temporal", "leave-one-out", "user"] = "temporal"
    """``temporal``: global time cut-offs (leakage-free default); ``leave-one-out``: last item test, second-last
    validation (the academic protocol of published numbers); ``user``: random users held out (the paper's)."""
    val_fraction: float = 0.1
    """Temporal: fraction of the time span (by event quantile) in the validation window; user: fraction of users."""
    test_fraction: float = 0.1
    """Temporal: fraction of events after the test cut-off; user: fraction of users."""
    targets: Literal["next", "all", "last"] = "next"
    """Temporal: ``next`` = each user's first event in the window, ``all`` = every event in it.
    User protocol: ``all`` = every position of held-out users, ``last`` (or ``next``) = the last position only."""
    seed: int = 0
    """Seed of the user split."""

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        for key in ("val_fraction", "test_fraction"):
            v = getattr(self, key)
            if not 0.0 < v < 0.5:
                raise ValueError(f"{key} must be in (0, 0.5), got {v}")
        if self.protocol == "temporal" and self.targets == "last":
            raise ValueError("targets 'last' is for the 'user' protocol; the temporal protocol takes 'next' (each "
                             "user's first event in the window) or 'all'")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        return self


class DataConfig(_Frozen):
    """From a raw log to model-ready sequences."""

    source: SourceConfig = SourceConfig()
    """Where to read from."""
    clean: CleanConfig = CleanConfig()
    """Cleaning."""
    sessions: SessionConfig = SessionConfig()
    """Sessionisation."""
    intents: tuple[IntentConfig, ...] = ()
    """Intent labels to predict (M = len(intents)); empty gives a next-item-only model."""
    features: FeatureConfig = FeatureConfig()
    """Extra input features."""
    split: SplitConfig = SplitConfig()
    """Evaluation protocol."""
    cache_dir: str | None = ".cache/intentrec"
    """Where prepared data is cached, keyed by a hash of this section; ``null`` disables caching."""

    @model_validator(mode="after")
    def _unique_intents(self) -> DataConfig:
        names = [i.name for i in self.intents]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"intents: intent names must be unique; repeated: {sorted(dupes)}")
        return self


# ----------------------------------------------------------------------------------------------------------
# model / train / eval
# ----------------------------------------------------------------------------------------------------------


HEURISTICS = ("popularity", "recent_popularity", "item_knn", "session_knn")
"""Architectures without gradient training (:attr:`ModelConfig.is_heuristic`)."""


class ModelConfig(_Frozen):
    """IntentRec and its ablations (PAPER §3, §6.5; defaults PAPER §10 #4-#10)."""

    architecture: Literal[
        "intentrec", "sasrec", "bert4rec", "gru", "lstm", "transformer", "transact",
        "popularity", "recent_popularity", "item_knn", "session_knn",
    ] = "intentrec"
    """``intentrec`` (variants V0-V3 below) or a baseline of PAPER §6.3 in the same framework: ``sasrec`` (item ids
    only, no intent heads), ``bert4rec`` (item ids only, masked-item training, no intent heads), ``gru`` / ``lstm`` /
    ``transformer`` (item ids only, plus a linear head per intent), ``transact`` (TransAct adapted to next item +
    intents, PAPER §8, §10 #18: item id ⊕ interaction metadata). Untrained heuristics (no gradient training; intents
    by the majority training label): ``popularity`` (training counts), ``recent_popularity`` (counts in the last
    ``recent_window`` of training), ``item_knn`` (item-to-item cosine of co-occurrence, summed over the recent
    history), ``session_knn`` (neighbouring training sessions of the current session)."""
    variant: Literal["V0", "V1", "V2", "V3"] = "V3"
    """IntentRec only. V0 item only; V1 one shared encoder with parallel heads; V2 separate encoders, hierarchical; V3 = V2 +
    short-term interest (full IntentRec)."""
    max_len: int = 100
    """n: input length (latest n interactions); longer training histories are cut into windows of n."""
    d_model: int = 128
    """Width of the intent and item Transformers."""
    n_layers: int = 2
    """Layers per Transformer."""
    n_heads: int = 4
    """Attention heads per layer."""
    ffn_mult: int = 4
    """Feed-forward width as a multiple of d_model."""
    dropout: float = 0.1
    """Dropout in the Transformers and on the input features (IntentRec: see ``feature_dropout``)."""
    feature_dropout: float | None = None
    """IntentRec only: dropout on the input features F before the encoders' projections; ``null`` = ``dropout``.
    Each encoder also drops out its projected input (as SASRec drops out its embedding), so with ``null`` the item
    embedding passes two dropouts of ``dropout``; 0 leaves one, as in SASRec (BENCHMARKS.md "Wider and annealed")."""
    item_emb_dim: int = 64
    """Item-id embedding size inside F_k."""
    cat_emb_dim: int = 16
    """Embedding size of each categorical feature inside F_k."""
    d_proj: int = 64
    """Size of Proj_i outputs and of the intent embedding Z."""
    d_short: int = 64
    """Width of the short-term encoder S_k."""
    short_heads: int = 2
    """Heads of the short-term encoder."""
    short_stop_gradient: bool = False
    """V3: the short-term encoder reads the features F without back-propagating into them (S learns its own
    projection and Transformer; the item-id embedding table, shared with the item head, learns from the intent and
    item encoders only). It did not speed up V3 on Amazon Sports or Beauty (BENCHMARKS.md "Where IntentRec's slow
    start came from"); not in the paper; off by default."""
    horizon: str | float | None = "1w"
    """H: the short-term window (T_k - H, T_k] (e.g. ``1w``, ``1month``, ``off``). Only V3 uses it."""
    short_window_events: int = 10
    """For data without timestamps: the short-term window is the last m events (PAPER §10 #23)."""
    gap_buckets: int = 32
    """Buckets of the log gap to the previous interaction in the timestamp embedding (PAPER §10 #8)."""
    item_head: Literal["tied", "linear", "dot"] = "tied"
    """``linear`` = FC_item over d_model (PAPER §3.2 step 10); ``tied`` = project to item_emb_dim and score by dot
    product with the item-id embeddings (+ bias); ``dot`` = the dot product of the hidden row itself with the item-id
    embeddings (+ bias), no projection (SASRec's / RecBole's head; needs ``item_emb_dim == d_model``). On Amazon
    Beauty ``dot`` learned markedly faster per step than ``tied`` for SASRec (BENCHMARKS.md "Training recipe")."""
    identity_init: bool = False
    """IntentRec only: start the item-id block of the intent and item encoders' input projections (FCNorm) as the
    identity, so the item embedding enters the Transformer unmixed at step 0 (as in SASRec, whose input is the item
    embedding itself); needs ``item_emb_dim == d_model``. On Amazon Beauty it made V0 learn about 30% more per epoch
    early on (BENCHMARKS.md "Training recipe"); off by default until it is measured on the other datasets."""
    input_block_norm: bool = False
    """IntentRec only: LayerNorm each block of the intent and item encoders' inputs (the item embedding, each
    attribute embedding, S, Z; numeric features pass unchanged) before their input projection. Without it the
    blocks arrive at very different scales (Amazon Beauty at step 0: item embedding rms 0.02, S rms 1, Z rms 0.0007);
    Adam moves every weight at about the same rate, so a block's share of the projected input grows in proportion
    to its scale: S soon outweighs the item identity, and Z, the intent embedding the hierarchy is built on,
    barely registers (BENCHMARKS.md "Where IntentRec's slow start came from"). Not in the paper; off by default."""
    zero_side_inputs: bool = False
    """IntentRec only: start the columns of the intent and item encoders' input projections (FCNorm) that read
    anything but the item-id embedding (attribute embeddings, numeric features, the short-term interest S, the
    intent embedding Z) at zero, so the untrained encoders see the item embedding alone and learn from the first
    step how much of the rest to mix in. Without it S, the output of a LayerNorm-ed Transformer (rms 1), enters
    through N(0, 0.02) weights at about 5× the item embedding's N(0, 0.02) rms. It does **not** cure V3's slow start
    on Amazon Sports: S's weights grow from zero as fast as from N(0, 0.02), and its scale is what counts; use
    ``input_block_norm`` for that (BENCHMARKS.md "Where IntentRec's slow start came from"). Not in the paper, which
    does not state an initialisation; off by default."""
    init: Literal["normal", "xavier"] = "normal"
    """Initialisation of every linear and embedding weight: ``normal`` = N(0, 0.02) (BERT / RecBole); ``xavier`` =
    Xavier-normal, std sqrt(2 / (fan_in + fan_out)), as RecTools' SASRec (the recalculated SASRec+SS numbers of
    ANCHORS.md). Biases start at zero and LayerNorms at (1, 0) either way; ``identity_init`` and
    ``zero_side_inputs`` apply after it."""
    output_attributes: tuple[str, ...] = ()
    """Item-level categorical attributes (intents or input features, e.g. ``[category]``) whose learned embeddings
    are added to every item's row of the item head: score(j) = q · (e_j + Σ_a mean A_a[labels_a(j)]) + b_j, so items
    sharing a label share part of their output embedding. Not in the paper (whose FC_item sees item ids only);
    ``[]`` = the paper's head. The attribute must be constant per item (training refuses one that is not, such as
    a recency label). Any trained model with an item head accepts it (BENCHMARKS.md "Attribute-aware item head")."""
    repeat_boost: bool = False
    """Add a learned score to the items already in the input sequence: at position k every input item i <= k gets
    g_k · exp(r[k − i]), with g_k = w · h_k + c read from the hidden row (positive: the next event repeats something
    seen, negative: it explores) and r a learned fall-off per distance in events; w, c, r start at zero (the untrained
    model is the plain head). Not in the paper: a copy mechanism for data where the next item often repeats one of
    the session (trivago: 70% of the test targets; a streaming "continue watching" of the same title). Every neural
    model except BERT4Rec accepts it (the untrained baselines ignore it) (``intentrec.model.layers.RepeatBoost``; BENCHMARKS.md, "`paper` on trivago")."""
    repeat_boost_attributes: tuple[str, ...] = ()
    """Single-valued item attributes (intents or categorical features, e.g. ``[show_id]``) at whose level a repeat
    boost also works: at position k every input item i <= k adds g^a_k · exp(r^a[k − i]) to every item sharing its
    value of attribute a (its own gate and fall-off per attribute, zero at the start). Not in the paper: "continue
    the show" (the next episode is a new item of a show in the history) as ``repeat_boost`` is "watch this title
    again". Independent of ``repeat_boost``; every neural model except BERT4Rec accepts it
    (``intentrec.model.layers.AttributeRepeatBoost``; BENCHMARKS.md, "`paper` on the streaming simulator")."""
    request_gap: bool = False
    """Read the time from each event to the request its prediction answers (not in the paper): a learned embedding
    of its log bucket (``model.gap_buckets``), starting at zero, is added to the rows the intent heads and the item
    head read. In training and evaluation the request time is the next event's time; a live request's is its
    ``request_time`` (default: now). It tells a session going on (minutes) from a new visit (days), which decides
    between "the next episode" and a fresh pick. Every causal neural model accepts it (BERT4Rec is refused)
    (``intentrec.model.layers.RequestGapEmbedding``; BENCHMARKS.md, "`paper` on the streaming simulator")."""
    heads: tuple[str, ...] | None = None
    """Intents that get a head (Table 3 single-head variants); ``null`` = every configured intent."""
    transact_window: str | float = "24h"
    """TransAct only: maximum of the random time-window mask (PAPER §8.6, §10 #18). In training each sequence draws
    r ~ U[0, window] per forward pass and position k ignores earlier events less than r before T_k; never applied at
    evaluation, nor on untimed data. ``off`` disables it."""
    transact_k: int = 10
    """TransAct only: K of the first-K + max-pool read-out (the K most recent encoder outputs, PAPER §8.7)."""
    mask_prob: float = 0.2
    """BERT4Rec only: share of positions replaced by [MASK] in training (Cloze objective)."""
    knn_neighbors: int = 100
    """item_knn: neighbours kept per item; session_knn: neighbouring training sessions per prediction."""
    knn_history: int = 10
    """item_knn / session_knn: the latest m events of the input that vote (the current session's, for session_knn)."""
    recent_window: str | float = "30d"
    """recent_popularity: training events within this span before the training cut-off count (for data without
    timestamps: each user's last ``knn_history`` training events)."""

    @field_validator("horizon", "transact_window", "recent_window", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        # YAML 1.1 reads a bare `off` / `no` as False: treat it as the word the user wrote
        if v is False:
            return "off"
        if v is True:
            raise ValueError("expected a time span such as '1w', or 'off'")
        return v

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        for key in ("max_len", "d_model", "n_layers", "n_heads", "ffn_mult", "item_emb_dim", "cat_emb_dim",
                    "d_proj", "d_short", "short_heads", "short_window_events", "gap_buckets", "transact_k",
                    "knn_neighbors", "knn_history"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.d_short % self.short_heads:
            raise ValueError(f"d_short ({self.d_short}) must be divisible by short_heads ({self.short_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.feature_dropout is not None and not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError("feature_dropout must be in [0, 1) or null")
        for key in ("horizon", "transact_window", "recent_window"):
            try:
                span = parse_duration(getattr(self, key))
            except ValueError as err:
                raise ValueError(f"{key}: {err}") from None
            if key == "recent_window" and span is None:
                raise ValueError("recent_window must be a time span such as '30d'")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError("mask_prob must be in (0, 1)")
        if len(set(self.output_attributes)) != len(self.output_attributes):
            raise ValueError(f"output_attributes repeats a name: {list(self.output_attributes)}")
        if len(set(self.repeat_boost_attributes)) != len(self.repeat_boost_attributes):
            raise ValueError(f"repeat_boost_attributes repeats a name: {list(self.repeat_boost_attributes)}")
        for key in ("repeat_boost", "repeat_boost_attributes", "request_gap"):
            if getattr(self, key) and self.architecture == "bert4rec":
                raise ValueError(f"{key} works on the causal models only: BERT4Rec reads the whole sequence around "
                                 "a [MASK] token, so 'the items before position k' is not its input; turn it off for "
                                 "bert4rec")
        if self.identity_init and self.item_emb_dim != self.d_model:
            raise ValueError(f"identity_init needs item_emb_dim == d_model (got {self.item_emb_dim} and "
                             f"{self.d_model})")
        if self.item_head == "dot" and self.item_emb_dim != self.d_model:
            raise ValueError(f"item_head 'dot' scores the d_model-wide hidden row against the item_emb_dim-wide item "
                             f"embeddings, so they must be equal (d_model {self.d_model}, item_emb_dim "
                             f"{self.item_emb_dim}); set item_emb_dim to d_model or use item_head 'tied'")
        return self

    @property
    def label(self) -> str:
        """Human-readable model name, e.g. ``IntentRec V3`` or ``SASRec``."""
        names = {"sasrec": "SASRec", "bert4rec": "BERT4Rec", "gru": "GRU", "lstm": "LSTM",
                 "transformer": "Transformer", "transact": "TransAct", "popularity": "Popularity",
                 "recent_popularity": "Recent popularity", "item_knn": "Item-kNN", "session_knn": "Session-kNN"}
        return f"IntentRec {self.variant}" if self.architecture == "intentrec" else names[self.architecture]

    @property
    def is_heuristic(self) -> bool:
        """True for the untrained baselines (popularity, recent popularity, item-kNN, session-kNN)."""
        return self.architecture in HEURISTICS

    @property
    def horizon_seconds(self) -> float | None:
        """H in seconds, or ``None`` when the short-term window is off."""
        return parse_duration(self.horizon)


class TrainConfig(_Frozen):
    """Optimisation (PAPER §10 #11, #12, #16)."""

    epochs: int = 50
    """Maximum epochs; early stopping usually ends sooner."""
    batch_size: int = 128
    """Training windows per step: the global batch, split across the processes of a ``torchrun`` launch (each of N
    ranks takes every N-th window), so results do not depend on the number of processes."""
    lr: float = 1e-3
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases, norms and embeddings)."""
    warmup_steps: int = 1000
    """Linear warm-up steps, then cosine decay to ``min_lr_ratio * lr``; capped at 10% of all steps."""
    min_lr_ratio: float = 0.05
    """Final learning rate as a fraction of ``lr``."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0 = off)."""
    patience: int = 5
    """Epochs without improvement of ``monitor`` on *validation* before stopping."""
    monitor: str = "ndcg@10"
    """Validation item metric used for early stopping and the best checkpoint."""
    lambda_intent: float = 1.0
    """λ in L = L_item + λ Σ L_intent (PAPER Eq. 4)."""
    duration_weight: Literal["target", "input", "none"] = "target"
    """d_k: weight each position by the engagement of the target (k+1) event, of the input (k) event, or 1."""
    seed: int = 0
    """Seed of initialisation, shuffling and dropout."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` picks CUDA when available."""
    amp: bool = False
    """bf16 autocast on CUDA (ignored on CPU). Off by default: for models of this size (d ~ 64) it made IntentRec
    training 5x slower at batch 128 on an H200 (CPU-side dispatch of every matmul; BENCHMARKS.md "GPU readiness");
    turn it on with large batches or large models."""
    num_threads: int | None = None
    """torch intra-op threads on CPU (``null`` = torch default)."""
    max_steps_per_epoch: int | None = None
    """Cap on steps per epoch (smoke runs)."""
    eval_every: int = 1
    """Validate every this many epochs."""
    max_minutes: float | None = None
    """Wall-clock budget of training in minutes (resumed runs count earlier time): training stops after the epoch
    that exhausts it, and the best validated checkpoint is kept; ``null`` = no budget."""
    num_workers: int = 0
    """DataLoader worker processes that build training batches (0 = in the training process; a GPU run with a
    busy CPU benefits from 2-4)."""
    compile: bool = False
    """Wrap the model in ``torch.compile`` (dynamic shapes) for training; measured 1.26x faster in fp32 on an H200
    (BENCHMARKS.md "GPU readiness"); the first steps pay the compilation."""
    sampled_softmax: int = 0
    """Negatives per step of a sampled item softmax with the log-Q correction (0 = the full softmax, the default).
    PAPER §10 #17: full softmax up to ~100k items, sampling beyond; evaluation always ranks the full catalogue."""
    sampling_alpha: float = 0.75
    """Negative-sampling distribution q_j ∝ (training count_j + 1)^alpha (0 = uniform, 1 = popularity)."""
    sampling_per_row: bool = False
    """Draw ``sampled_softmax`` negatives for every scored position (as RecTools' SASRec does for the recalculated
    SASRec+SS numbers) instead of one set shared by the step; costs a (positions × negatives × E) gather."""
    ema_decay: float = 0.0
    """Validate and keep an exponential moving average of the weights instead of the raw weights (0 = off; e.g.
    0.999 averages over about the last 1,000 steps; ``intentrec.train.ema``). Training continues from the raw
    weights; the best checkpoint, and so evaluation, serving and export, hold the average."""
    dist_timeout_minutes: float = 60.0
    """Multi-process runs: how long a rank waits for the others at a collective. Ranks 1..N-1 wait while rank 0
    prepares the data and validates, so this must exceed the longest of those."""

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        for key in ("epochs", "batch_size", "patience", "eval_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        for key in ("weight_decay", "grad_clip", "lambda_intent", "num_workers", "sampled_softmax", "sampling_alpha",
                    "warmup_steps", "seed"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("num_threads", "max_steps_per_epoch"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 or null, got {getattr(self, key)}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("min_lr_ratio must be in [0, 1]")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError("max_minutes must be > 0 or null")
        if self.sampling_per_row and self.sampled_softmax == 0:
            raise ValueError("sampling_per_row draws the negatives of a sampled softmax: set sampled_softmax > 0 "
                             "(e.g. 256) or leave sampling_per_row false")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")
        if self.dist_timeout_minutes <= 0:
            raise ValueError("dist_timeout_minutes must be > 0")
        try:
            _check_metric_name(self.monitor)
        except ValueError as err:
            raise ValueError(f"monitor: {err}") from None
        return self


def _check_metric_name(name: str) -> None:
    if name == "mrr":
        return
    match = re.fullmatch(r"(ndcg|recall|hr|mrr)@(\d+)", name)
    if match is None or int(match.group(2)) < 1:
        raise ValueError(f"unknown metric {name!r}: use ndcg@K, recall@K, hr@K, mrr@K or mrr")


class EvalConfig(_Frozen):
    """Evaluation (EVALUATION.md). Ranking is always over the full catalogue; ties count against the model."""

    exclude_seen: bool | None = None
    """Remove items the user engaged with before the target from the ranking; ``null`` = the dataset's default
    (on for MovieLens and Amazon, off for trivago, Yelp, LastFM and generic tables)."""
    ks: tuple[int, ...] = (1, 5, 10, 20)
    """Cut-offs for HR/Recall@K and NDCG@K."""
    batch_size: int = 256
    """Evaluation batch size."""
    intent_topk: int = 3
    """k of recall@k for multi-label intents."""

    @field_validator("ks")
    @classmethod
    def _ks(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(k < 1 for k in v):
            raise ValueError("ks must be non-empty positive integers")
        return tuple(sorted(set(v)))

    @field_validator("batch_size", "intent_topk")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be >= 1, got {v}")
        return v


class ExperimentConfig(_Frozen):
    """The whole experiment: one section per stage."""

    name: str = "intentrec"
    """Run name, shown in outputs."""
    data: DataConfig = DataConfig()
    """Data section."""
    model: ModelConfig = ModelConfig()
    """Model section."""
    train: TrainConfig = TrainConfig()
    """Training section."""
    eval: EvalConfig = EvalConfig()
    """Evaluation section."""

    @model_validator(mode="after")
    def _cross_check(self) -> ExperimentConfig:
        names = {i.name for i in self.data.intents}
        if self.model.heads is not None:
            unknown = [h for h in self.model.heads if h not in names]
            if unknown:
                raise ValueError(f"model.heads names unknown intents {unknown}; configured intents: {sorted(names)}")
        attributes = names | set(self.data.features.categorical)
        for key in ("output_attributes", "repeat_boost_attributes"):
            unknown_out = [a for a in getattr(self.model, key) if a not in attributes]
            if unknown_out:
                raise ValueError(f"model.{key} names {unknown_out}, which are neither intents nor categorical "
                                 f"features; available: {sorted(attributes)}")
        if self.model.architecture == "intentrec" and self.model.variant != "V0" and not names:
            raise ValueError(
                f"model.variant {self.model.variant} needs at least one intent in data.intents (or use variant V0)"
            )
        if self.train.monitor.startswith(("ndcg@", "recall@", "hr@")):
            k = int(self.train.monitor.split("@")[1])
            if k not in self.eval.ks:
                raise ValueError(f"train.monitor {self.train.monitor!r} needs {k} in eval.ks {list(self.eval.ks)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (round-trips through :func:`config_from_dict`)."""
        return self.model_dump(mode="json")


# ----------------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------------


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class reached by following ``loc`` from :class:`ExperimentConfig` (None when it leaves them)."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        if isinstance(part, int):
            continue  # an element of a tuple of sections (data.intents[0])
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        found = [t for t in (typing.get_args(field.annotation) or (field.annotation,))
                 if isinstance(t, type) and issubclass(t, BaseModel)]
        if not found:
            return None
        model = found[0]
    return model


def _key_path(loc: tuple[Any, ...]) -> str:
    """``("data", "intents", 0, "column")`` -> ``data.intents[0].column``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error_key(loc: tuple[Any, ...], text: str) -> str:
    """The dotted key an error is about: a section-level validator names its field first (``batch_size must be
    >= 1`` in section ``eval`` -> ``eval.batch_size``); a top-level one names the dotted key itself."""
    loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p))  # pydantic's union-member tags
    dotted = re.match(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\b", text)
    if not loc and dotted:
        return dotted.group(1)
    first = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\b", text)
    model = _section_model(loc)
    if first and model is not None and first.group(1) in model.model_fields:
        return _key_path((*loc, first.group(1)))
    return _key_path(loc) or "(top level)"


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for e in err.errors():
        kind = e["type"]
        text = e["msg"].removeprefix("Value error, ")
        path = _error_key(tuple(e["loc"]), text if kind not in {"extra_forbidden", "missing"} else "")
        if kind == "extra_forbidden":
            msg = f"unknown key '{path}' (check the spelling; see configs/base.yaml for every key)"
        elif kind == "missing":
            msg = f"missing required key '{path}'"
        else:
            msg = f"'{path}': {text} (got {e.get('input')!r})" if "input" in e and not isinstance(e.get("input"), dict) else f"'{path}': {text}"
        lines.append(f"  - {msg}")
    return "\n".join(lines)


def config_from_dict(raw: Mapping[str, Any], origin: str = "<dict>") -> ExperimentConfig:
    """Validate a plain mapping into an :class:`ExperimentConfig`.

    Raises:
        ConfigError: unknown keys or invalid values, each named by its dotted key path.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections (data, model, train, eval)")
    try:
        return ExperimentConfig.model_validate(dict(raw))
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


def _read_raw(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (give a .yaml/.yml or .toml file; examples in configs/)")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix in {".yaml", ".yml"}:
            raw = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raise ConfigError(f"{path}: unsupported config format {suffix!r}; use .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot parse: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, model, train, eval)")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping.

    Example:
        >>> apply_overrides({"train": {"epochs": 5}}, ["train.epochs=2", "model.variant=V0"])
        {'train': {'epochs': 2}, 'model': {'variant': 'V0'}}
    """
    out: dict[str, Any] = _deep_copy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value (e.g. train.epochs=3)")
        key, value_text = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: cannot parse value: {err}") from None
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = {}
                node[p] = nxt
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: '{p}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Load and validate a YAML or TOML experiment config, with optional ``key=value`` overrides.

    Raises:
        ConfigError: the file is missing or unparsable, or a key/value is invalid (named in the message).
    """
    p = Path(path)
    raw = apply_overrides(_read_raw(p), overrides)
    return config_from_dict(raw, origin=str(p))

"""Server settings: a frozen `ServeConfig`, read from the environment or a TOML file at the edge."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from thaw.data.dataset import EventWeights


@dataclass(frozen=True)
class ExplorationConfig:
    """Share of recommendation slots given to low-exposure items, chosen by Thompson sampling."""

    share: float = 0.1  # expected fraction of the k slots that explore
    max_impressions: int = 200  # an item with fewer impressions than this counts as low-exposure
    pool: int = 200  # explore among the user's top `pool` items by relevance
    prior_clicks: float = 1.0  # Beta(alpha, beta) prior on an item's click rate
    prior_misses: float = 1.0
    click_types: tuple[str, ...] = ("click", "purchase")
    seed: int = 0
    # A user's generated feedback (store events with generated = True) makes its new items their
    # first exploration candidates while those stay low-exposure (thaw.serving.generated). On by
    # default; it does nothing in a store without generated events.
    generated_candidates: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"exploration share must be in [0, 1], got {self.share}")
        if self.max_impressions < 1 or self.pool < 1:
            raise ValueError("exploration max_impressions and pool must be >= 1")
        if self.prior_clicks <= 0 or self.prior_misses <= 0:
            raise ValueError("exploration priors must be > 0")


@dataclass(frozen=True)
class LimitsConfig:
    """Request limits: each violation is answered with a 4xx naming the field."""

    max_k: int = 100
    max_batch: int = 1000  # items, users or events in one request
    max_body_bytes: int = 8 * 1024 * 1024
    max_liked_items: int = 200
    max_text_chars: int = 100_000

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"limit {f.name} must be >= 1, got {getattr(self, f.name)}")


@dataclass(frozen=True)
class ServeConfig:
    """Everything `create_app` needs; nothing is read from the environment after this is built."""

    db_url: str = "sqlite:///thaw.sqlite"
    model_dir: Path | None = None  # a checkpoint written by `thaw train`; None serves content+popularity
    models_dir: Path | None = None  # where POST /admin/train writes new versions
    encoder: str = "minilm"  # text encoder spec for content similarity (thaw.encoders.load_encoder)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    read_keys: frozenset[str] = frozenset()
    write_keys: frozenset[str] = frozenset()
    admin_keys: frozenset[str] = frozenset()
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    weights: EventWeights = field(default_factory=EventWeights)
    default_k: int = 10
    history_limit: int = 500  # most recent events of a user that shape their vector
    log_impressions: bool = True
    impression_flush_seconds: float = 0.2  # short flushes: at 450 lists a second one took ~10 ms, not ~50
    stats_refresh_seconds: float = 30.0  # add the events and impressions stored since the last count
    full_recount_seconds: float = 300.0  # recount popularity, clicks and impressions from every stored row
    train_metric: str = "recall@20"  # compared before a retrained model replaces the live one
    train_tolerance: float = 0.0  # the new model may be at most this much worse
    threads: int = 1
    # Vector indexes: exact scan below `ann_threshold` live items, FAISS HNSW from there on (an
    # index switches once it grows past it). With the CiteULike model's 449-d vectors one request's
    # HNSW search overtakes the exact scan at about 30k items (docs/benchmarks/serving.md); 50k
    # keeps exact results and quick starts a while longer. The scan's cost grows with items x dim,
    # so for shorter vectors the crossover lies higher (roughly 449 / dim times).
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    hnsw_threads: int = 1  # FAISS threads for building graphs (searches use one)
    # Several workers on one store: each polls the store's change log this often (one indexed
    # query; 20 a second cost well under 1% of a core) and applies items that others added,
    # changed or deleted; a full reconciliation runs every `resync_seconds` as a safety net;
    # change-log rows older than `change_retention_seconds` are pruned.
    sync_seconds: float = 0.05
    resync_seconds: float = 600.0
    change_retention_seconds: float = 3600.0
    history_cache_users: int = 10_000  # users (and items) whose history, model vector and ranked list are kept between requests (0: none)
    warm_users: int = 10_000  # stored users whose model vector and ranked list are computed at model load, in the background (0: none)

    def __post_init__(self) -> None:
        if not self.db_url:
            raise ValueError("db_url must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.workers < 1 or self.threads < 1:
            raise ValueError("workers and threads must be >= 1")
        if not 1 <= self.default_k <= self.limits.max_k:
            raise ValueError(f"default_k must be in 1..{self.limits.max_k}, got {self.default_k}")
        if self.history_limit < 1:
            raise ValueError("history_limit must be >= 1")
        if self.impression_flush_seconds <= 0 or self.stats_refresh_seconds <= 0 or self.full_recount_seconds <= 0:
            raise ValueError("flush and refresh intervals must be > 0")
        if self.train_tolerance < 0:
            raise ValueError("train_tolerance must be >= 0")
        if self.ann_threshold < 1:
            raise ValueError(f"ann_threshold must be >= 1, got {self.ann_threshold}")
        if self.hnsw_m < 2 or self.hnsw_ef_construction < 1 or self.hnsw_ef_search < 1 or self.hnsw_threads < 1:
            raise ValueError("hnsw_m must be >= 2; hnsw_ef_construction, hnsw_ef_search and hnsw_threads >= 1")
        if self.sync_seconds <= 0 or self.resync_seconds <= 0 or self.change_retention_seconds <= 0:
            raise ValueError("sync_seconds, resync_seconds and change_retention_seconds must be > 0")
        if self.history_cache_users < 0:
            raise ValueError("history_cache_users must be >= 0")
        if self.warm_users < 0:
            raise ValueError("warm_users must be >= 0")
        for key in self.read_keys | self.write_keys | self.admin_keys:
            if not key or any(c.isspace() for c in key):
                raise ValueError("API keys must be non-empty and contain no whitespace")

    @property
    def hnsw_options(self) -> dict[str, int]:
        """Keyword arguments for FaissHnswIndex / make_index."""
        return {
            "m": self.hnsw_m,
            "ef_construction": self.hnsw_ef_construction,
            "ef_search": self.hnsw_ef_search,
            "n_threads": self.hnsw_threads,
        }

    @property
    def auth_enabled(self) -> bool:
        """False when no key of any kind is configured: the API is open."""
        return bool(self.read_keys or self.write_keys or self.admin_keys)


def _keys(raw: str | list[str] | None) -> frozenset[str]:
    if raw is None:
        return frozenset()
    parts = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(p.strip() for p in parts if p.strip())


_ENV = {
    "THAW_DB": "db_url",
    "THAW_MODEL": "model_dir",
    "THAW_MODELS_DIR": "models_dir",
    "THAW_ENCODER": "encoder",
    "THAW_HOST": "host",
    "THAW_PORT": "port",
    "THAW_WORKERS": "workers",
    "THAW_THREADS": "threads",
    "THAW_READ_KEYS": "read_keys",
    "THAW_WRITE_KEYS": "write_keys",
    "THAW_ADMIN_KEYS": "admin_keys",
    "THAW_EXPLORE_SHARE": "exploration.share",
    "THAW_ANN_THRESHOLD": "ann_threshold",
}


def load_serve_config(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServeConfig:
    """Build a ServeConfig: defaults < TOML file ([serve] table) < environment < explicit overrides.

    Nested sections are `[serve.limits]` and `[serve.exploration]` in the file, dotted names
    (`"exploration.share"`) in overrides.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{config_file}: cannot read config file: {exc}") from exc
        section = data.get("serve", data)
        for key, value in section.items():
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    values[f"{key}.{sub}"] = sub_value
            else:
                values[key] = value
    env = os.environ if environ is None else environ
    for name, key in _ENV.items():
        if env.get(name):
            values[key] = env[name]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(values, source=str(config_file) if config_file else "environment")


def _build(values: dict[str, Any], *, source: str) -> ServeConfig:
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"limits": {}, "exploration": {}, "weights": {}}
    for key, value in values.items():
        head, _, tail = key.partition(".")
        if tail:
            if head not in nested:
                raise ValueError(f"{source}: unknown serve section {head!r}")
            nested[head][tail] = value
        else:
            top[key] = value
    known = {f.name: f for f in fields(ServeConfig)}
    for key in top:
        if key not in known or key in nested:
            raise ValueError(f"{source}: unknown serve setting {key!r}")
    try:
        for key in ("read_keys", "write_keys", "admin_keys"):
            if key in top:
                top[key] = _keys(top[key])
        for key in ("model_dir", "models_dir"):
            if key in top and top[key] is not None:
                top[key] = Path(top[key])
        for key in ("port", "workers", "threads", "default_k", "history_limit", "ann_threshold", "hnsw_m",
                    "hnsw_ef_construction", "hnsw_ef_search", "hnsw_threads", "history_cache_users", "warm_users"):
            if key in top:
                top[key] = int(top[key])
        for key in ("impression_flush_seconds", "stats_refresh_seconds", "full_recount_seconds", "train_tolerance", "sync_seconds",
                    "resync_seconds", "change_retention_seconds"):
            if key in top:
                top[key] = float(top[key])
        if "log_impressions" in top and isinstance(top["log_impressions"], str):
            top["log_impressions"] = top["log_impressions"].lower() in ("1", "true", "yes", "on")
        config = ServeConfig(**top)
        sections = {
            "limits": (config.limits, int),
            "exploration": (config.exploration, None),
            "weights": (config.weights, float),
        }
        for name, sub_values in nested.items():
            if not sub_values:
                continue
            base, cast = sections[name]
            allowed = {f.name: f for f in fields(base)}
            for sub in sub_values:
                if sub not in allowed:
                    raise ValueError(f"{source}: unknown setting {name}.{sub}")
            converted = {k: _coerce(getattr(base, k), v) if cast is None else cast(v) for k, v in sub_values.items()}
            config = replace(config, **{name: replace(base, **converted)})
        return config
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from exc


def _coerce(default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        return tuple(value.split(",")) if isinstance(value, str) else tuple(value)
    return value

"""Configuration: frozen dataclasses grouped in sections; the environment is read only at the edge."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DB_URL = "sqlite:///thaw.sqlite"


@dataclass(frozen=True)
class DataConfig:
    """Where the datasets live and which store to use."""

    data_dir: Path = Path("../shared/data")
    db_url: str = DEFAULT_DB_URL
    batch_size: int = 5000

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.db_url:
            raise ValueError("db_url must not be empty")


@dataclass(frozen=True)
class RuntimeConfig:
    """Process-level settings: thread counts (1 per process is the sane default on small machines)."""

    threads: int = 1

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class Config:
    """Top-level configuration; each component receives only its own section."""

    data: DataConfig = field(default_factory=DataConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def data_dir_from_env(default: Path | None = None) -> Path:
    """The dataset root: `$THAW_DATA`, else `default`, else `../shared/data`."""
    value = os.environ.get("THAW_DATA")
    if value:
        return Path(value)
    return default if default is not None else DataConfig().data_dir


def threads_from_env() -> int:
    """Thread count from `$THAW_THREADS` (default 1)."""
    raw = os.environ.get("THAW_THREADS", "1")
    try:
        threads = int(raw)
    except ValueError as exc:
        raise ValueError(f"THAW_THREADS must be an integer, got {raw!r}") from exc
    return RuntimeConfig(threads=threads).threads

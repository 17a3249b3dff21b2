"""`thaw serve`: the HTTP API over a store and (optionally) a trained model."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from thaw.cli import app
from thaw.cli.common import DbOption, db_url, err_console, fail_on_data_errors

SETTINGS_ENV = "THAW_SERVE_SETTINGS"  # hands the CLI's settings to worker processes


def app_from_environment() -> Any:
    """The app built from $THAW_SERVE_SETTINGS (what each worker of --workers > 1 serves)."""
    from thaw.serving.app import create_app
    from thaw.serving.config import load_serve_config

    settings = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
    config_file = settings.pop("config_file", None)
    config = load_serve_config(config_file=Path(config_file) if config_file else None, overrides=settings)
    _set_threads(config.threads)
    return create_app(config)


@app.command()
def serve(
    db: DbOption = None,
    model: Annotated[
        Path | None, typer.Option(help="A trained model directory (thaw train --out); default: content + popularity")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A TOML file with a \\[serve] table (keys, limits, exploration)")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default 1)")] = None,
    encoder: Annotated[str | None, typer.Option(help="Text encoder for content similarity (default minilm)")] = None,
    models_dir: Annotated[
        Path | None, typer.Option(help="Where POST /admin/train saves new model versions")
    ] = None,
    explore_share: Annotated[
        float | None, typer.Option(help="Share of slots for low-exposure items (default 0.1; 0 turns it off)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    log_format: Annotated[str, typer.Option(help="json (one object per line) or text")] = "json",
) -> None:
    """Serve recommendations over HTTP; keys come from THAW_READ_KEYS / THAW_WRITE_KEYS / THAW_ADMIN_KEYS."""
    import uvicorn

    from thaw.serving.app import create_app
    from thaw.serving.config import load_serve_config
    from thaw.serving.logs import configure_logging

    with fail_on_data_errors():
        overrides: dict[str, Any] = {
            "db_url": db_url(db) if db or not config else None,
            "model_dir": str(model) if model else None,
            "models_dir": str(models_dir) if models_dir else None,
            "host": host,
            "port": port,
            "workers": workers,
            "encoder": encoder,
            "exploration.share": explore_share,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        cfg = load_serve_config(config_file=config, overrides=overrides)
        if cfg.model_dir is not None and not cfg.model_dir.exists():
            raise FileNotFoundError(f"--model {cfg.model_dir} does not exist (train one with `thaw train --out DIR`)")
        if log_format not in ("json", "text"):
            raise ValueError(f"--log-format must be json or text, got {log_format!r}")
    configure_logging(log_level, json_lines=log_format == "json")
    _set_threads(cfg.threads)
    if not cfg.auth_enabled:
        err_console.print(
            "[yellow]warning:[/] no API keys configured: the API is OPEN to anyone who can reach "
            f"{cfg.host}:{cfg.port}. Set THAW_READ_KEYS, THAW_WRITE_KEYS, THAW_ADMIN_KEYS to require keys."
        )
    if cfg.workers > 1:
        # One process accepts and hands connections to the workers in turn (serving/balancer.py).
        from thaw.serving.balancer import serve_balanced

        from thaw.data.store import Store

        with fail_on_data_errors():  # once here, not by every worker at the same time
            Store.migrate_once(cfg.db_url)
        os.environ[SETTINGS_ENV] = json.dumps({**overrides, "config_file": str(config) if config else None})
        setup = functools.partial(configure_logging, log_level, json_lines=log_format == "json")
        serve_balanced(
            "thaw.cli.serve:app_from_environment", cfg.workers, cfg.host, cfg.port,
            setup=setup, log_config=None, access_log=False,
        )
    else:
        uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_config=None, access_log=False)


def _set_threads(n: int) -> None:
    # One BLAS / torch thread per process by default: requests are already concurrent, and on a
    # small shared machine threads inside one matrix-vector product only fight each other.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass

"""`thaw train`: fit the cold-start model on a store and write a self-describing checkpoint."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from thaw.cli import app
from thaw.cli.common import DbOption, fail_on_data_errors, open_store

console = Console()


def read_config(path: Path | None) -> dict[str, Any]:
    """A config file (JSON or TOML, sections `model`, `train`, `encoder`) as plain values."""
    if path is None:
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot parse config: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config must be a table/object with model/train sections")
    return values


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint folder to write")],
    db: DbOption = None,
    config: Annotated[Path | None, typer.Option(help="JSON or TOML file with model/train settings")] = None,
    encoder: Annotated[
        str | None,
        typer.Option(help="Text encoder: minilm (default), hash, or a model folder; 'none' for no text"),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: train.threads, 1)")] = None,
    seed: Annotated[int | None, typer.Option(help="Override train.seed")] = None,
    adversarial: Annotated[
        bool, typer.Option("--adversarial", help="GAR: adversarial training of the item content path")
    ] = False,
    generated_feedback: Annotated[
        int | None,
        typer.Option(min=0, help="Generate N users per new item, warm it up, store them as generated events"),
    ] = None,
    nproc: Annotated[
        int, typer.Option(min=1, help="Train on N local processes (DDP over gloo, through torchrun)")
    ] = 1,
    dp_epsilon: Annotated[
        float | None, typer.Option(min=0, help="Differentially private training (user-level DP-SGD) to this epsilon")
    ] = None,
    dp_noise_multiplier: Annotated[float | None, typer.Option(min=0, help="DP-SGD noise (overrides --dp-epsilon)")] = None,
    dp_max_grad_norm: Annotated[float | None, typer.Option(min=0, help="DP-SGD per-user clipping norm")] = None,
) -> None:
    """Train thaw's two-tower model on everything in the store and save it to --out."""
    from thaw.models.thaw_model import ThawConfig
    from thaw.data.generated import store_model_feedback
    from thaw.training.checkpoint import save
    from thaw.training.curves import FILENAME as CURVES
    from thaw.training.curves import save_training_curves
    from thaw.training.loop import EpochReport
    from thaw.training.private import is_private, private_config
    from thaw.training.train import train_from_store

    with fail_on_data_errors():
        values = read_config(config)
        cfg = ThawConfig.from_dict(values)
        given = {"epochs": epochs, "threads": threads, "seed": seed, "generated_feedback": generated_feedback}
        if adversarial:  # GAR's generator must read the text: the item residual gets it
            given["adversarial"] = True
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, residual_text=True))
        overrides = {k: v for k, v in given.items() if v is not None}
        if overrides:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
        if encoder is not None:
            cfg = dataclasses.replace(cfg, encoder=None if encoder.lower() == "none" else encoder)
        private = {"dp_epsilon": dp_epsilon, "dp_noise_multiplier": dp_noise_multiplier, "dp_max_grad_norm": dp_max_grad_norm}
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(
            cfg.train, **{k: v for k, v in private.items() if v is not None}))
        if is_private(cfg.train):  # no user/item ids, frozen item tower: see thaw.training.private
            cfg = private_config(cfg)
        if nproc > 1:
            from thaw.cli.common import db_url
            from thaw.training.distributed import train_distributed

            console.print(train_distributed(db_url(db), cfg, out, nproc))
            return
        with open_store(db) as store, Progress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            tasks: dict[str, Any] = {}

            def stage(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total or None, info="")
                progress.update(tasks[name], completed=done, total=total or None)

            def on_epoch(report: EpochReport) -> None:
                if "train" not in tasks:
                    tasks["train"] = progress.add_task("train", total=report.epochs, info="")
                val = "" if report.val_metric is None else f" val {report.val_metric:.4f}"
                progress.update(
                    tasks["train"], completed=report.epoch,
                    info=f"loss {report.loss:.4f}{val} best {report.best_metric or 0:.4f}",
                )

            model, history = train_from_store(store, cfg, callback=on_epoch, stage=stage)
            written = store_model_feedback(store, model)
        folder = save(model, out)
        save_training_curves(history, folder / CURVES)
        if written:
            console.print(f"{written:,} generated events stored for new items (drop them with delete_generated_events)")
    best = "n/a" if history.best_metric is None else f"{history.best_metric:.4f}"
    console.print(
        f"trained {len(history.epochs)} epochs in {history.seconds:.1f}s; best validation "
        f"{history.metric} {best} at epoch {history.best_epoch}"
    )
    prior = _prior_line(model)
    if prior:
        console.print(prior)
    if history.privacy is not None:
        spent = history.privacy
        console.print(f"differential privacy (user level): epsilon {spent['epsilon']:.2f} at delta "
                      f"{spent['delta']:.1e} after {spent['steps']} steps (noise {spent['noise_multiplier']:.2f})")
    console.print(f"checkpoint written to {folder}")


def _prior_line(model: Any) -> str:
    """What the new-user popularity prior chose (models/priors.py), or "" without one."""
    config = getattr(model, "model_config_", None)
    weights = getattr(config, "prior_weights", None)
    if not getattr(config, "popularity_prior", False) or not weights:
        return ""
    if len(weights) == 2:
        return f"new-user popularity prior: weight {weights[0]:g} without history, {weights[1]:g} with one"
    low, high = config.opening_range
    return (f"new-user popularity prior: weight {weights[0]:g} without history; with one, {weights[1]:g} for "
            f"newcomers' usual first picks down to {weights[2]:g} for a user's own (mean opening share "
            f"{high:.2f} against {low:.2f})")

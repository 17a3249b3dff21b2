"""`thaw evaluate`: cross-validated, leakage-guarded evaluation of models on a store's data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from thaw.cli import app
from thaw.cli.common import DbOption, db_url, fail_on_data_errors, open_store
from thaw.config import threads_from_env

console = Console(stderr=True)
DEFAULT_MODELS = "random,popularity,content-knn,als,seed"


def parse_model_options(values: list[str]) -> dict[str, dict[str, Any]]:
    """`model.key=value` strings -> {model: {key: value}}; values parsed as JSON when they can be."""
    options: dict[str, dict[str, Any]] = {}
    for raw in values:
        head, sep, value = raw.partition("=")
        model, dot, key = head.partition(".")
        if not sep or not dot or not model or not key:
            raise ValueError(f"--model-option {raw!r}: expected MODEL.KEY=VALUE, e.g. seed.max_epochs=5")
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if isinstance(parsed, list):
            parsed = tuple(parsed)
        options.setdefault(model, {})[key.replace("-", "_")] = parsed
    return options


@app.command()
def evaluate(
    db: DbOption = None,
    scenario: Annotated[
        str,
        typer.Option(
            help="warm, cold-item, cold-user, cold-both, onboarding-K (K = 1, 3, 5, ...: a new user's "
            "first K interactions revealed) or onboarding-K-random (K of them at random); "
            "several comma-separated run on the same folds, one table each"
        ),
    ] = "cold-item",
    models: Annotated[str, typer.Option(help="Comma-separated model names")] = DEFAULT_MODELS,
    folds: Annotated[int, typer.Option(help="Run folds 0..K-1 (K = n-folds: full cross-validation)")] = 5,
    n_folds: Annotated[int, typer.Option(help="Partition groups (cold share = 1/n-folds)")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of splits, tie-breaking and models")] = 0,
    split_dir: Annotated[
        Path | None, typer.Option(help="Read the split from a ColdRec/ALDI directory instead")
    ] = None,
    write_split_dir: Annotated[
        Path | None, typer.Option(help="Also write each fold's split there (ColdRec layout, fold-F/)")
    ] = None,
    encoder: Annotated[
        str, typer.Option(help="Text encoder for content vectors: minilm, hash, ..., or none/tfidf")
    ] = "none",
    ks: Annotated[str, typer.Option(help="Cut-offs K, comma-separated")] = "10,20,50",
    model_option: Annotated[
        list[str] | None, typer.Option(help="MODEL.KEY=VALUE passed to a model (repeatable)")
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option(
            help="Re-rank every model's scores for cold-item exposure: cold-boost=LAMBDA (add LAMBDA "
            "to cold items' per-user standardised scores) or cold-share=RHO[,k=K] (at least "
            "ceil(RHO*K) cold items in each top-K list, K=20 by default; a bare cold-share is "
            "RHO=0.1, chosen on validation); none = off. A single model: --model-option "
            "MODEL.rerank=SPEC. See docs/benchmarks/fairness.md."
        ),
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset label in reports")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch/BLAS threads (default $THAW_THREADS or 1)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here")] = None,
    report: Annotated[Path | None, typer.Option(help="Write Markdown + PNG plots into this directory")] = None,
) -> None:
    """Cross-validate models on scenarios; print a summary per scenario, write JSON and a report.

    With several scenarios, --json OUT.json writes OUT-<scenario>.json and --report DIR writes
    DIR/<scenario>/.
    """
    from thaw.data.dataset import build_snapshot
    from thaw.evaluation import coldrec
    from thaw.evaluation.content import encode_snapshot
    from thaw.evaluation.harness import Progress as RunProgress
    from thaw.evaluation.harness import run_scenarios
    from thaw.evaluation.report import write_json, write_report_dir
    from thaw.evaluation.splits import make_split, parse_scenario
    from thaw.models.registry import factory
    from thaw.models.rerank import as_spec

    with fail_on_data_errors():
        names = [m.strip() for m in models.split(",") if m.strip()]
        for name in names:
            factory(name)  # unknown names fail before any work
        scenarios = [s.strip() for s in scenario.split(",") if s.strip()]
        if not scenarios:
            raise ValueError("--scenario: give at least one scenario")
        for name in scenarios:
            parse_scenario(name)
        if split_dir and len(scenarios) > 1:
            raise ValueError("--split-dir holds one split: give one --scenario with it")
        cutoffs = tuple(int(k) for k in ks.split(","))
        options = parse_model_options(model_option or [])
        rerank_spec = as_spec(rerank)
        n_threads = threads or threads_from_env()
        _set_threads(n_threads)
        label = dataset or _label(db_url(db))
        with open_store(db) as store:
            console.print(f"reading {db_url(db)} …")
            snapshot = build_snapshot(store)
            if encoder not in ("none", "tfidf"):
                console.print(f"encoding item texts with {encoder} (cached in the store) …")
            snapshot = encode_snapshot(snapshot, encoder, store=store, threads=n_threads)
        splits = [coldrec.read_split_dir(split_dir, snapshot, seed=seed)] if split_dir else None
        if write_split_dir:
            for name in scenarios:
                for fold in range(folds):
                    split = make_split(snapshot, name, fold=fold, n_folds=n_folds, seed=seed)
                    where = write_split_dir / (f"fold-{fold}" if len(scenarios) == 1 else f"{name}/fold-{fold}")
                    coldrec.write_split_dir(split, snapshot, where)
        started = time.perf_counter()
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        ) as bar:
            task = bar.add_task("evaluating", total=None)

            def hook(p: RunProgress) -> None:
                bar.update(task, total=p.total, completed=p.done,
                           description=f"{p.scenario} fold {p.fold} {p.model}: {p.stage}")

            reports = run_scenarios(
                names, snapshot, scenarios, folds=folds, n_folds=n_folds, seed=seed, ks=cutoffs,
                options=options, splits=splits, callback=hook, dataset=label, encoder=encoder,
                rerank=rerank_spec,
            )
        for name, result in reports.items():
            _print_summary(result)
            several = len(reports) > 1
            if json_out:
                path = json_out.with_name(f"{json_out.stem}-{name}{json_out.suffix}") if several else json_out
                write_json(result, path)
                console.print(f"JSON: {path}")
            if report:
                paths = write_report_dir(result, report / name if several else report)
                console.print(f"report: {paths['markdown']}")
        console.print(f"done in {time.perf_counter() - started:.0f}s")


def _set_threads(n: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def _label(url: str) -> str:
    tail = url.rsplit("/", 1)[-1]
    return tail.rsplit(".", 1)[0] if tail else url


def _print_summary(report: Any) -> None:
    reranked = f", re-ranked {report.rerank}" if report.rerank else ""
    table = Table(
        title=f"{report.dataset} {report.scenario} ({report.primary} ranking, {report.folds} folds{reranked})"
    )
    table.add_column("model", no_wrap=True)
    shown = ("recall@20", "ndcg@20", "mrr", "auc")
    for metric in shown:
        table.add_column(metric, justify="right", no_wrap=True)
    table.add_column("fit s", justify="right")
    for result in report.models:
        summary = report.summary(result.model)
        cells = [f"{summary[m]['mean']:.4f} ± {summary[m]['std']:.4f}" for m in shown]
        fit = sum(f.fit_seconds for f in result.folds) / len(result.folds)
        table.add_row(result.model, *cells, f"{fit:.1f}")
    out = Console(width=max(Console().width, 110))
    out.print(table)
    out.print(_exposure_table(report))


EXPOSURE = (("cold_exposure@20", "cold share"), ("gini@20", "gini"))


def _exposure_table(report: Any) -> Table:
    """Top-20 exposure per sub-ranking: share of slots on cold items, Gini of recommendation counts."""
    table = Table(title="exposure in top-20 lists (cold share = slots on cold items; gini 0 = even)")
    table.add_column("model", no_wrap=True)
    for ranking in report.rankings:
        for _, label in EXPOSURE:
            table.add_column(f"{ranking}\n{label}", justify="right", no_wrap=True)
    for result in report.models:
        cells = []
        for ranking in report.rankings:
            summary = report.summary(result.model, ranking)
            cells += [f"{summary[m]['mean']:.3f}" for m, _ in EXPOSURE]
        table.add_row(result.model, *cells)
    return table

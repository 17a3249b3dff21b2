"""Ablation of GAR (adversarial generator) and generated feedback in thaw, with the evaluation harness.

Variants, each on the same folds of the cold-item scenario (rankings: cold items, warm items,
overall) of CiteULike and MovieLens 100K:
  thaw                 defaults (no GAN)
  thaw-gar             + GAR: adversarial training of the item content path (residual MLP on text)
  thaw-gar-feedback    + generated feedback (users generated per cold item, id warm-up)
  thaw-feedback        thaw + generated feedback, without GAR
Paired tests against `thaw`; target: cold-item Recall@20 >= 1.05 x thaw, warm >= 0.98 x thaw.
Writes bench/results/gan.json and docs/benchmarks/gan.md (the hand-written reading there is kept
across runs). GAN settings were chosen on fold-0 validation only (see the doc).

    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_gan.py
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for  # noqa: E402

from thaw.evaluation.harness import run_scenarios  # noqa: E402
from thaw.evaluation.report import report_json  # noqa: E402
from thaw.evaluation.results import Report  # noqa: E402
from thaw.evaluation.stats import compare  # noqa: E402
from thaw.models.thaw_model import create as create_thaw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_gan")

# Chosen on fold-0 validation of both datasets (docs/benchmarks/gan.md, "How the settings were chosen").
GAR = {"residual_text": True, "adversarial": True, "gan_weight": 0.1, "gan_beta": 0.9, "gan_alpha": 0.9,
       "gan_lr": 1e-5}
FEEDBACK = {"generated_feedback": 20, "feedback_lr": 3e-3, "feedback_epochs": 20}
VARIANTS: dict[str, dict[str, Any]] = {
    "thaw": {},
    "thaw-gar": GAR,
    "thaw-gar-feedback": GAR | FEEDBACK,
    "thaw-feedback": FEEDBACK,  # generated feedback without GAR: which of the two parts does what
}
DATASETS = ("citeulike-a", "ml-100k")
RANKINGS = ("cold", "warm", "overall")
METRICS = ("recall@20", "ndcg@20")
COLD_GAIN, WARM_LOSS = 1.05, 0.98  # the targets of issue 5


def _factory(name: str, options: dict[str, Any], fits: dict[str, list[Any]]) -> Callable[..., Any]:
    def make(seed: int = 0) -> Any:
        base = _feedback_base(name)
        if base is not None:
            model: Any = FeedbackOnTop(fits, base, options, seed)
        else:
            model = create_thaw(seed=seed, **options)
            fit = model.fit
            model.fit = lambda data, **kw: (setattr(model, "fitted_on_", data), fit(data, **kw))[1]
        fits.setdefault(name, []).append(model)
        return model

    return make


def _feedback_base(name: str) -> str | None:
    """The variant whose fit `name` extends with generated feedback only (None: train from scratch)."""
    options = VARIANTS[name]
    for other, base in VARIANTS.items():
        if other != name and options == base | FEEDBACK and not base.get("generated_feedback"):
            return other
    return None


class FeedbackOnTop:
    """`base` variant + generated feedback, without training the base a second time.

    Training is deterministic for a seed, so fitting thaw with `generated_feedback` equals the
    base variant's fit (same fold, same seed) followed by `feedback.apply`; the copy skips the
    repeated training (about half the CPU of this benchmark). `fit_seconds` then counts only
    the feedback; the table adds the base's time to report a whole fit.
    """

    name = "thaw"

    def __init__(self, fits: dict[str, list[Any]], base: str, options: dict[str, Any], seed: int) -> None:
        self.fits, self.base, self.options, self.seed = fits, base, options, seed

    def fit(self, data: Any) -> FeedbackOnTop:
        import copy
        import dataclasses

        from thaw.models.thaw_features import pair_times
        from thaw.models.tower_data import item_table
        from thaw.training import feedback
        from thaw.training.loop import TrainingData

        base = self.fits[self.base][-1]
        if getattr(base, "fitted_on_", None) is not data:
            raise RuntimeError(f"{self.base} must be fitted on the same fold just before")
        model = copy.deepcopy(base)
        config = create_thaw(seed=self.seed, **self.options).config
        model.config_ = config
        train = data.train.tocsr().astype(np.float32)
        train.sort_indices()
        training = TrainingData(  # what ThawRecommender.fit hands the loop
            train=train, items=model._item_features(data.items), users=model.user_features_,
            warm_users=np.asarray(data.warm_users, bool), warm_items=np.asarray(data.warm_items, bool),
            validation=data.validation, validation_items=data.validation_items,
            train_times=None if data.train_events is None else pair_times(train, data.train_events),
        )
        model.history_ = dataclasses.replace(model.history_)
        with_ids, model.feedback_ = feedback.apply(model.model_, training, config.train, model.history_)
        model.item_vectors_ = item_table(model.model_, training.items, with_ids)
        model.warm_items_ = with_ids
        model._index()
        self.model_ = model
        self.history_ = model.history_
        return self

    def score(self, users: np.ndarray, history: Any) -> np.ndarray:
        return self.model_.score(users, history)


def _fit_summary(model: Any) -> dict[str, Any]:
    """What one fit did: kept epoch, its validation value, and what the feedback warm-up kept."""
    history = model.history_
    feedback = history.feedback or {}
    return {
        "best_epoch": history.best_epoch,
        "best_val": history.best_metric,
        "epochs": len(history.epochs) - 1,
        "seconds": history.seconds,
        "feedback_best_epoch": feedback.get("best_epoch"),
        "feedback_pairs": feedback.get("pairs"),
        "feedback_confidence": feedback.get("confidence"),
    }


def run_dataset(dataset: str, folds: int, threads: int) -> tuple[Report, dict[str, list[dict[str, Any]]], float]:
    """Cross-validate every variant on the cold-item scenario of `dataset`."""
    snapshot = snapshot_for(dataset, "minilm", threads)
    fits: dict[str, list[Any]] = {}
    models = {name: _factory(name, options, fits) for name, options in VARIANTS.items()}

    def progress(p: Any) -> None:
        log.info("%s %s fold %d %s: %s (%d/%d)", dataset, p.scenario, p.fold, p.model, p.stage, p.done, p.total)

    started = time.perf_counter()
    report = run_scenarios(models, snapshot, ["cold-item"], folds=folds, seed=0, callback=progress,
                           dataset=dataset, encoder="minilm")["cold-item"]
    elapsed = time.perf_counter() - started
    summaries = {name: [_fit_summary(m) for m in fitted] for name, fitted in fits.items()}
    for name, rows in summaries.items():  # a feedback-only fit: add its base's training time
        base = _feedback_base(name)
        for row, fold in zip(rows, report.model(name).folds, strict=True):
            row["seconds"] = fold.fit_seconds
            if base is not None:
                row["base_seconds"] = summaries[base][fold.fold]["seconds"]
    if fits.get("thaw-gar"):  # the training curves of fold 0's GAR fit, as `thaw train` writes them
        from thaw.training.curves import save_training_curves

        save_training_curves(fits["thaw-gar"][0].history_, ROOT / "docs" / "benchmarks" / "img" / f"gan-{dataset}.png")
    return report, summaries, elapsed


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def summary(report: Report) -> dict[str, Any]:
    """Per variant, ranking and metric: mean, std, per fold, and the paired test against thaw."""
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        rows: dict[str, Any] = {}
        for ranking in RANKINGS:
            for metric in METRICS:
                values = report.model(variant).per_fold(ranking, metric)
                cell: dict[str, Any] = {
                    "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "per_fold": [float(v) for v in values],
                }
                if variant != "thaw":
                    test = compare(report, variant, "thaw", ranking, metric)
                    base = float(report.model("thaw").per_fold(ranking, metric).mean())
                    cell |= {"delta": test.delta, "ratio": cell["mean"] / base if base else None,
                             "p_folds": _clean(test.p_folds), "p_users": _clean(test.p_users)}
                rows[f"{ranking}/{metric}"] = cell
        out[variant] = rows
    return out


def target(rows: dict[str, Any]) -> dict[str, Any]:
    """Whether a variant meets issue 5's target against thaw."""
    cold, warm = rows["cold/recall@20"], rows["warm/recall@20"]
    met = (cold.get("ratio") or 0) >= COLD_GAIN and (warm.get("ratio") or 0) >= WARM_LOSS
    return {"cold_ratio": cold.get("ratio"), "warm_ratio": warm.get("ratio"), "met": bool(met)}


def markdown(document: dict[str, Any], reading: str) -> str:
    """docs/benchmarks/gan.md from the JSON document and the kept hand-written reading."""
    lines = [
        "# GAR (adversarial generator) and generated feedback: ablation", "",
        "Made by `make bench-gan` (`python bench/bench_gan.py`; the command of each dataset's run is",
        "given in its section).", "",
        "Cold-item scenario, folds of 5-fold cross-validation (seed 0, the same folds for every",
        "variant; how many per dataset below), full ranking. `cold`: cold test items among all items without",
        "training interactions; `warm`: warm test pairs among warm items; `overall`: all test pairs",
        "among all items, for users with both. Mean ± sample std over folds; Δ and p against `thaw`",
        "(paired t-test on fold means, Wilcoxon signed-rank on per-user values pooled over folds,",
        "two-sided, uncorrected). thaw early-stops on each fold's validation pairs only.", "",
        "Variants (settings beyond the defaults):", "",
    ]
    for name, options in VARIANTS.items():
        lines.append(f"- `{name}`: {', '.join(f'{k}={v}' for k, v in options.items()) or 'defaults'}")
    lines += ["", f"Target: cold Recall@20 ≥ {COLD_GAIN:.2f}× thaw with warm Recall@20 ≥ {WARM_LOSS:.2f}× thaw.", ""]
    for dataset, part in document["datasets"].items():
        lines += [f"## {dataset} ({part['folds']} fold(s))", "", f"Command: `{part['command']}`.", "",
                  "| variant | cold R@20 | cold N@20 | warm R@20 | warm N@20 | overall R@20 | overall N@20 | fit s/fold |",
                  "|---|---|---|---|---|---|---|---|"]
        for variant, rows in part["summary"].items():
            cells = [f"{rows[f'{r}/{m}']['mean']:.4f} ± {rows[f'{r}/{m}']['std']:.4f}" for r in RANKINGS for m in METRICS]
            seconds = np.mean([f["seconds"] + f.get("base_seconds", 0.0) for f in part["fits"][variant]])
            lines.append(f"| {variant} | " + " | ".join(cells) + f" | {seconds:.0f} |")
        lines += ["", "| variant vs thaw | ranking | Δ R@20 | ratio | p (folds) | p (users) |", "|---|---|---|---|---|---|"]
        for variant, rows in part["summary"].items():
            if variant == "thaw":
                continue
            for ranking in RANKINGS:
                c = rows[f"{ranking}/recall@20"]
                lines.append(f"| {variant} | {ranking} | {c['delta']:+.4f} | {c['ratio']:.3f}× | "
                             f"{_p(c['p_folds'])} | {_p(c['p_users'])} |")
        lines += ["", "| variant | target met | cold ratio | warm ratio | kept epoch per fold | feedback kept (epoch per fold) |",
                  "|---|---|---|---|---|---|"]
        for variant, rows in part["summary"].items():
            if variant == "thaw":
                continue
            t = part["targets"][variant]
            kept = ", ".join(str(f["best_epoch"]) for f in part["fits"][variant])
            fed = ", ".join(str(f["feedback_best_epoch"]) for f in part["fits"][variant] if f["feedback_best_epoch"] is not None)
            lines.append(f"| {variant} | {'yes' if t['met'] else 'no'} | {t['cold_ratio']:.3f}× | {t['warm_ratio']:.3f}× | "
                         f"{kept} | {fed or 'n/a'} |")
        lines += ["", "The mixed (`overall`) list, where new items compete with warm ones: recall over each user's",
                  "cold and warm test items, and the share of the top-20 slots that show a cold item.", "",
                  "| variant | cold_recall@20 | warm_recall@20 | cold_exposure@20 |", "|---|---|---|---|"]
        for result in part["report"]["results"]:
            overall = result["rankings"]["overall"]["metrics"]
            cells = [f"{overall[m]['mean']:.4f} ± {overall[m]['std']:.4f}"
                     for m in ("cold_recall@20", "warm_recall@20", "cold_exposure@20")]
            lines.append(f"| {result['model']} | " + " | ".join(cells) + " |")
        thaw_epochs = ", ".join(str(f["best_epoch"]) for f in part["fits"]["thaw"])
        lines += ["", f"thaw's kept epoch per fold: {thaw_epochs}. Wall time: {part['seconds']:.0f}s. "
                  f"Training curves of fold 0's `thaw-gar` fit: ![curves](img/gan-{dataset}.png)", ""]
    lines += ["## Reading", "", reading.strip(), ""]
    return "\n".join(lines)


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def kept_reading(path: Path) -> str:
    """The hand-written `## Reading` section of an existing doc (kept across runs)."""
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if "## Reading" in text:
            return text.split("## Reading", 1)[1].strip()
    return "(to be written by hand after the run)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "gan.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks" / "gan.md")
    parser.add_argument("--markdown-only", action="store_true", help="re-render the doc from the JSON of the last run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("thaw.training.loop").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    if args.markdown_only:
        document = json.loads(args.results.read_text())
        args.markdown.write_text(markdown(document, kept_reading(args.markdown)))
        return 0
    command = "python bench/bench_gan.py " + " ".join(argv if argv is not None else sys.argv[1:])
    document: dict[str, Any] = {"command": command.strip(), "variants": VARIANTS, "datasets": {}}
    if args.results.is_file():  # keep datasets of an earlier run that this one does not redo
        document["datasets"] = json.loads(args.results.read_text()).get("datasets", {})
    reports = {}
    for dataset in [d for d in args.datasets.split(",") if d]:
        report, fits, elapsed = run_dataset(dataset, args.folds, args.threads)
        reports[dataset] = report
        rows = summary(report)
        document["datasets"][dataset] = {
            "folds": args.folds, "command": command.strip(), "summary": rows, "targets": {v: target(r) for v, r in rows.items() if v != "thaw"},
            "fits": fits, "seconds": elapsed, "report": report_json(report, baselines=["thaw"]),
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(document, indent=1) + "\n")  # after every dataset
        log.info("%s done in %.0fs", dataset, elapsed)
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var" / "bench-gan-reports.pkl").write_bytes(pickle.dumps(reports))
    args.markdown.write_text(markdown(document, kept_reading(args.markdown)))
    log.info("wrote %s and %s", args.results, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cold-start evaluation: splits, metrics, the harness and reports.

- `splits.make_split(snapshot, scenario, fold=, n_folds=, seed=)` -> `Split` (train/val/test pairs,
  cold users/items, onboarding reveals); `coldrec.read_split_dir` / `write_split_dir` for the
  ColdRec/ALDI layout.
- `harness.fit_data(snapshot, split)` -> `FitData`; `harness.evaluate_fold(model, snapshot, split)`
  -> `FoldResult` (per-user metric arrays); `harness.run(models, snapshot, scenario, folds=, seed=)`
  -> `Report`; `harness.run_scenarios(...)` shares fits between scenarios with the same training data.
- Every sub-ranking also reports list metrics: coverage, cold exposure share, Gini of
  recommendation counts, mean training popularity (`metrics` docstring); `run_scenarios(...,
  rerank="cold-share=0.2")` re-ranks every model for cold exposure (`thaw.models.rerank`).
- `metrics` (pure functions), `ranking` (full ranking, seeded tie-breaks), `stats` (paired tests),
  `report` (JSON, Markdown), `plots` (PNG), `content` (pretrained text vectors), `synthetic`.
"""

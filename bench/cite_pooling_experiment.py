"""Validation-only: which frozen MiniLM sentence vector serves CiteULike cold items best?

Scores the cold-item validation view of one fold with thaw's untrained rule (whitened mean
pooling) for sentence vectors made differently from the same frozen model: the mean over tokens
of each layer's output and averages of layers (BERT-whitening's "first-last average"), and
token weightings of the last layer (IDF over the training titles, SIF's a / (a + p(w))).
Writes nothing; never reads the test pairs.

    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/cite_pooling_experiment.py --fold 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for  # noqa: E402
from cite_scoring_experiments import cold_view, content_scores, recall  # noqa: E402
from thaw.encoders.base import batches_by_length  # noqa: E402
from thaw.encoders.sentence import SentenceEncoder  # noqa: E402
from thaw.evaluation.harness import fit_data  # noqa: E402
from thaw.evaluation.splits import make_split  # noqa: E402


def layer_means(encoder: SentenceEncoder, texts: list[str], cache: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """(n_layers + 1, n, h) token-mean of every hidden state, and the token ids of each text."""
    import torch

    if cache.exists():
        saved = np.load(cache, allow_pickle=True)
        return saved["means"], list(saved["ids"])
    transformer = encoder.model[0]
    bert, tokenizer = transformer.auto_model, transformer.tokenizer
    n_layers = bert.config.num_hidden_layers
    means = np.zeros((n_layers + 1, len(texts), bert.config.hidden_size), np.float32)
    ids: list[np.ndarray] = [np.zeros(0, np.int64)] * len(texts)
    with torch.no_grad():
        for index in batches_by_length(texts, 128):
            encoded = tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=256,
                                return_tensors="pt")
            hidden = bert(**encoded, output_hidden_states=True).hidden_states
            mask = encoded["attention_mask"].float()[:, :, None]
            for layer, states in enumerate(hidden):
                means[layer, index] = ((states * mask).sum(1) / mask.sum(1)).numpy()
            for row, i in enumerate(index):
                ids[i] = encoded["input_ids"][row][encoded["attention_mask"][row].bool()].numpy()
    np.savez(cache, means=means, ids=np.array(ids, dtype=object))
    return means, ids


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/citeulike-a-layer-means.npz"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    snapshot = snapshot_for("citeulike-a", "minilm", threads=1)
    started = time.perf_counter()
    means, ids = layer_means(SentenceEncoder(threads=1), snapshot.items.documents(), args.cache)
    print(f"# layer means in {time.perf_counter() - started:.0f}s", flush=True)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=args.fold), seed=0)
    _, history, relevant, candidates = cold_view(data)

    def evaluator(exponent: float):  # type: ignore[no-untyped-def]
        return lambda x: recall(content_scores(x, data.warm_items, history, candidates, exponent)[2], relevant)

    evaluators = {e: evaluator(e) for e in (0.3, 0.5, 0.7)}

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def report(name: str, vectors: np.ndarray) -> None:
        values = {f"w{e}": round(evaluate(unit(vectors)), 4) for e, evaluate in evaluators.items()}
        print(json.dumps({"fold": args.fold, "vectors": name} | values), flush=True)

    last = len(means) - 1
    report("last (the stored vectors)", means[last])
    for layer in range(1, last):
        report(f"layer {layer}", means[layer])
    report("first-last avg (0 + 6)", unit(means[0]) + unit(means[last]))
    report("1 + 6", unit(means[1]) + unit(means[last]))
    report("5 + 6", unit(means[last - 1]) + unit(means[last]))
    report("4 + 5 + 6", unit(means[last - 2]) + unit(means[last - 1]) + unit(means[last]))
    report("concat 1 | 6", np.hstack([unit(means[1]), unit(means[last])]))
    report("concat 5 | 6", np.hstack([unit(means[last - 1]), unit(means[last])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

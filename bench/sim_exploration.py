"""Replay simulation of exploration on MovieLens 100K: cold-item exposure and hit rate.

    python bench/sim_exploration.py            # writes bench/results/exploration.json + docs/benchmarks/exploration.md

20% of the movies (seeded) are cold: they are in the catalogue from the start with no
interaction at all. Every user's ratings of warm movies are their history, except 20% of their
liked (>= 4 stars) warm ratings, held out. A user "clicks" a recommended movie when it is one of
their held-out liked movies: a liked cold movie, or a held-out liked warm one. In each round every
user (in a seeded random order) asks the serving engine for k=10; impressions are logged; each
click is posted as an event, so it updates the user's history, the item's popularity and its
click count at once, exactly as POST /events does. The same replay runs with exploration off and
on; nothing else differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from thaw.config import data_dir_from_env
from thaw.data.datasets import load_dataset, write_records
from thaw.data.records import EventRecord, now_utc
from thaw.data.store import Store
from thaw.encoders import load_encoder
from thaw.serving.config import ExplorationConfig, ServeConfig
from thaw.serving.engine import Engine

ROOT = Path(__file__).resolve().parent.parent


def build_base(path: Path, seed: int, cold_fraction: float) -> tuple[set[str], dict[str, set[str]], dict[str, set[str]]]:
    """Write the warm part of MovieLens to `path`; return cold items, cold and warm truths per user."""
    records = load_dataset("ml-100k", data_dir_from_env())
    rng = np.random.default_rng(seed)
    item_ids = [i.id for i in records.items]
    cold = set(rng.choice(item_ids, int(round(cold_fraction * len(item_ids))), replace=False).tolist())
    train, cold_truth, warm_truth = [], {}, {}
    for event in records.events:
        liked = event.value is not None and event.value >= 4
        if event.item in cold:
            if liked:
                cold_truth.setdefault(event.user, set()).add(event.item)
        elif liked and rng.random() < 0.2:
            warm_truth.setdefault(event.user, set()).add(event.item)
        else:
            train.append(event)
    if path.exists():
        path.unlink()
    with Store(f"sqlite:///{path}") as store:
        write_records(store, records.users, records.items, train)
    return cold, cold_truth, warm_truth


def replay(
    db: Path, encoder, share: float, args: argparse.Namespace, cold: set[str],
    cold_truth: dict[str, set[str]], warm_truth: dict[str, set[str]],
) -> dict:
    """One replay over a copy of the base store; returns totals and per-round curves."""
    exploration = ExplorationConfig(share=share, max_impressions=args.max_impressions, seed=args.seed)
    config = replace(ServeConfig(db_url=f"sqlite:///{db}"), exploration=exploration, log_impressions=True)
    store = Store(config.db_url)
    engine = Engine(store, encoder, config)
    engine.load()
    users = sorted(set(cold_truth) | set(warm_truth) | {u.id for u in store.iter_users()})
    rng = np.random.default_rng(args.seed)
    clicked: set[tuple[str, str]] = set()
    shown_cold: set[str] = set()
    clicked_cold: set[str] = set()
    rounds = []
    started = time.perf_counter()
    for round_ in range(args.rounds):
        impressions = cold_impressions = lists_with_hit = clicks = cold_clicks = explored = 0
        for user in rng.permutation(users):
            served = engine.recommend(engine.profile_of(str(user)), args.k)
            hits = []
            for scored in served.items:
                impressions += 1
                explored += scored.source == "exploration"
                if scored.item in cold:
                    cold_impressions += 1
                    shown_cold.add(scored.item)
                truth = cold_truth.get(user, set()) | warm_truth.get(user, set())
                if scored.item in truth and (user, scored.item) not in clicked:
                    clicked.add((user, scored.item))
                    hits.append(EventRecord(str(user), scored.item, "click", now_utc()))
                    cold_clicks += scored.item in cold
                    if scored.item in cold:
                        clicked_cold.add(scored.item)
            if hits:
                engine.add_events(hits)
                clicks += len(hits)
                lists_with_hit += 1
        rounds.append(
            {
                "round": round_ + 1,
                "cold_exposure_share": round(cold_impressions / impressions, 4),
                "hit_rate": round(lists_with_hit / len(users), 4),
                "clicks": clicks,
                "cold_clicks": cold_clicks,
                "explored_slots": explored,
            }
        )
        print(f"share={share} round {round_ + 1}: {rounds[-1]}", flush=True)
    engine.stop()
    store.close()
    total_impressions = args.rounds * len(users) * args.k
    return {
        "share": share,
        "seconds": round(time.perf_counter() - started, 1),
        "cold_exposure_share": round(sum(r["cold_exposure_share"] for r in rounds) / len(rounds), 4),
        "cold_items_shown": len(shown_cold),
        "cold_items_clicked": len(clicked_cold),
        "hit_rate": round(sum(r["hit_rate"] for r in rounds) / len(rounds), 4),
        "clicks": sum(r["clicks"] for r in rounds),
        "cold_clicks": sum(r["cold_clicks"] for r in rounds),
        "warm_clicks": sum(r["clicks"] - r["cold_clicks"] for r in rounds),
        "impressions": total_impressions,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-impressions", type=int, default=50)
    parser.add_argument("--cold-fraction", type=float, default=0.2)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "var/sim-exploration")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/exploration.json")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs/benchmarks/exploration.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base = args.work / "base.sqlite"
    cold, cold_truth, warm_truth = build_base(base, args.seed, args.cold_fraction)
    encoder = load_encoder(args.encoder)
    results = []
    for share in args.shares:
        db = args.work / f"share-{share}.sqlite"
        shutil.copy(base, db)  # the embedding cache is copied too: texts are encoded once
        results.append(replay(db, encoder, share, args, cold, cold_truth, warm_truth))
    report = {
        "command": "python bench/sim_exploration.py " + " ".join(sys.argv[1:]),
        "dataset": "ml-100k",
        "encoder": encoder.name,
        "source": "content similarity + popularity (no trained model)",
        "cold_items": len(cold),
        "users": len({u for u in cold_truth} | {u for u in warm_truth}),
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "out", "doc")},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_doc(args.doc, report)
    print(f"wrote {args.out} and {args.doc}")


def write_doc(path: Path, report: dict) -> None:
    rows = "\n".join(
        f"| {r['share']:.2f} | {r['cold_exposure_share']:.3f} | {r['cold_items_shown']} / {report['cold_items']} | "
        f"{r['cold_items_clicked']} | {r['hit_rate']:.3f} | {r['clicks']} | {r['cold_clicks']} | {r['warm_clicks']} |"
        for r in report["results"]
    )
    s = report["settings"]
    base, best = report["results"][0], report["results"][-1]
    reading = (
        f"content similarity alone already gives cold movies about their share of the catalogue "
        f"({base['cold_exposure_share']:.0%} of impressions) but keeps showing the same few: "
        f"{base['cold_items_shown']} distinct cold movies over all rounds. With {best['share']:.0%} of the "
        f"slots exploring, {best['cold_items_shown']} distinct cold movies were shown and "
        f"{best['cold_items_clicked']} of them were clicked (vs {base['cold_items_clicked']}); lists with a "
        f"hit rose from {base['hit_rate']:.3f} to {best['hit_rate']:.3f}. Without exploration the hit rate "
        f"falls to almost zero after the first round (round {len(base['rounds'])}: "
        f"{base['rounds'][-1]['hit_rate']:.3f}): once its first guesses are clicked or ignored, a "
        f"deterministic list keeps repeating; exploration keeps finding new hits. In the first "
        f"round, before any feedback, the hit rates were "
        + " / ".join(f"{r['rounds'][0]['hit_rate']:.3f}" for r in report["results"])
        + " (shares " + " / ".join(f"{r['share']:.2f}" for r in report["results"]) + "): the explored "
        f"slots cost nothing measurable here."
    )
    text = f"""# Exploration: replay simulation on MovieLens 100K

Command: `{report['command']}`

{report['cold_items']} of 1,682 movies are cold (seeded, {s['cold_fraction']:.0%}): in the catalogue with no
interactions. Recommendations come from the serving engine itself ({report['source']}, encoder
`{report['encoder']}`). Each of {s['rounds']} rounds, every user asks for k={s['k']}; a user clicks a shown
movie they rated >= 4 that the engine did not see (a cold movie, or one of 20% held-out liked warm
ones); each click is posted as an event at once. Exploration: Thompson sampling on the click rate
(Beta(1, 1) prior) among items with fewer than {s['max_impressions']} impressions, drawn from the user's
200 most relevant such items.

| exploration share | cold exposure share | cold items shown | cold items clicked | hit rate | clicks | cold clicks | warm clicks |
|---|---|---|---|---|---|---|---|
{rows}

Hit rate = share of lists with at least one click (mean over rounds); cold exposure share = share
of impressions that went to cold movies. Per-round numbers are in `bench/results/exploration.json`.

Reading: {reading}

Limits of this replay: a user clicks only what they rated, so a shown movie they never rated
counts as a miss even if they might have liked it (the usual bias of offline replay); the
recommendations come from content similarity, not a trained model; one seed.
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()

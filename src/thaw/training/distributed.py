"""Data-parallel training on several processes: PyTorch DistributedDataParallel over gloo (CPU).

`thaw train --nproc N` runs `torch.distributed.run` (torchrun) with this module as the worker
program; across machines, run torchrun yourself on every node with the same arguments (see
docs/distributed.md). Every process reads the same store, builds the same snapshot and holdout
(seeded), and takes one shard of each batch of users. DDP averages the gradients, so every
process applies the same Adam step and the weights stay identical; the main process (rank 0)
alone validates, decides when to stop (broadcast to the others) and writes the checkpoint.

The shuffled order of users is drawn from a generator every process shares; each process then
draws its shard's history/target splits and roles from its own (seed, rank) generator. With equal
shards, the averaged gradient is the gradient of the whole batch, as in one process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from thaw.models.thaw_model import ThawConfig, ThawRecommender

if TYPE_CHECKING:
    from thaw.models.base import FitData
    from thaw.models.two_tower import TwoTower
    from thaw.training.batches import Batch, BatchSampler
    from thaw.training.loop import Callback

log = logging.getLogger(__name__)

BACKEND = "gloo"
DEFAULT_TIMEOUT = timedelta(hours=2)  # encoding a large catalogue on rank 0 keeps the others waiting


class DistributedTrainingError(ValueError):
    """A worker of a distributed run failed (its own traceback went to stderr)."""


class _StepLoss(nn.Module):
    """The batch loss as a module, so that DDP sees a forward() whose backward it must average."""

    def __init__(self, model: TwoTower, loss: Callable[[Batch], Tensor]) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch: Batch) -> Tensor:
        return self.loss(batch)


@dataclass(frozen=True)
class Parallel:
    """This process's place in a training group, and the collective steps the loop needs."""

    rank: int
    world_size: int
    seed: int

    @property
    def is_main(self) -> bool:
        """True for the process that validates and writes the checkpoint."""
        return self.rank == 0

    def wrap(self, model: TwoTower, loss: Callable[[Batch], Tensor]) -> Callable[[Batch], Tensor]:
        """`loss` through DDP: its backward averages every gradient across the group."""
        # Some parameters sit out a batch (no history in it: no attention); buffers are fitted
        # identically everywhere, so they are not re-broadcast every step.
        return DistributedDataParallel(
            _StepLoss(model, loss), find_unused_parameters=True, forward_sync_buffers=False
        )

    def batches(self, sampler: BatchSampler) -> Callable[[], Iterator[Batch]]:
        """An epoch function yielding this process's shard of every batch."""
        sampler.rng = np.random.default_rng([self.seed, self.rank, 0x5A3D])  # own splits and roles
        order_rng = np.random.default_rng([self.seed, 0x0DE7])  # the same user order everywhere
        size = sampler.config.batch_users

        def epoch() -> Iterator[Batch]:
            order = order_rng.permutation(sampler.users)
            for start in range(0, len(order), size):
                users = order[start : start + size]
                if len(users) < self.world_size:
                    continue  # every process must take part in every step
                yield sampler.batch(np.array_split(users, self.world_size)[self.rank])

        return epoch

    def mean(self, value: float) -> float:
        """The mean of `value` over the group."""
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def agree(self, flag: bool) -> bool:
        """The main process's `flag`, on every process."""
        tensor = torch.tensor([int(flag)], dtype=torch.int64)
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())

    def barrier(self) -> None:
        """Wait until every process of the group is here."""
        dist.barrier()


def join_group(seed: int, timeout: timedelta = DEFAULT_TIMEOUT) -> Parallel:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_*)."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"environment variable(s) {', '.join(missing)} not set: start this module with torchrun "
            "(or `thaw train --nproc N`)"
        )
    if not dist.is_initialized():
        dist.init_process_group(BACKEND, timeout=timeout)
    return Parallel(dist.get_rank(), dist.get_world_size(), seed)


def launch(worker_args: Sequence[str], nproc: int, *, env: dict[str, str] | None = None) -> None:
    """Run this module on `nproc` local processes through torchrun; raises if any of them fails."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", __name__, *worker_args,
    ]
    environment = dict(os.environ if env is None else env)
    # One machine: talk over loopback, whatever the host name resolves to.
    environment.setdefault("GLOO_SOCKET_IFNAME", "lo")
    environment.setdefault("OMP_NUM_THREADS", "1")
    log.info("launching %s", " ".join(command))
    result = subprocess.run(command, env=environment, check=False)
    if result.returncode != 0:
        # ValueError: the CLI turns it into one clear line; the workers' own errors are above it.
        raise DistributedTrainingError(
            f"distributed training failed: torchrun exited with status {result.returncode} "
            "(each worker's error is printed above)"
        )


def train_distributed(url: str, config: ThawConfig, out: Path, nproc: int) -> str:
    """`thaw train --nproc N`: train on the store at `url` on `nproc` local processes; a summary line."""
    from thaw.training.checkpoint import load
    from thaw.training.private import is_private

    if is_private(config.train):
        raise ValueError("private (DP) training runs in one process: drop --nproc or the dp settings")
    launch(["--db", url, "--out", str(out), "--config", config_json(config)], nproc)
    history = load(out).history_
    best = "n/a" if history.best_metric is None else f"{history.best_metric:.4f}"
    return (
        f"trained on {history.world_size} processes: {len(history.epochs)} epochs in {history.seconds:.1f}s; "
        f"best validation {history.metric} {best} at epoch {history.best_epoch}\ncheckpoint written to {out}"
    )


class DistributedThawRecommender(ThawRecommender):
    """A ThawRecommender whose `fit` trains on `nproc` local processes (for the evaluation harness).

    The FitData goes to the workers through a temporary file; rank 0's checkpoint comes back and
    becomes this estimator's fitted state.
    """

    name = "thaw"

    def __init__(self, config: ThawConfig | None = None, nproc: int = 2) -> None:
        super().__init__(config)
        self.nproc = nproc

    def fit(
        self,
        data: FitData,
        *,
        callback: Callback | None = None,
        user_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
        parallel: Parallel | None = None,
    ) -> Self:
        """Train on `nproc` processes; `callback` is not called (progress stays in the workers)."""
        from thaw.training.checkpoint import load

        if parallel is not None:
            raise ValueError("DistributedThawRecommender starts its own process group")
        config = self.config if self.config is not None else ThawConfig()
        with tempfile.TemporaryDirectory(prefix="thaw-ddp-") as tmp:
            job = Path(tmp) / "job.pkl"
            job.write_bytes(pickle.dumps(
                {"data": data, "config": config.to_dict(), "user_ids": user_ids, "item_ids": item_ids}
            ))
            launch(["--job", str(job), "--out", str(Path(tmp) / "model")], self.nproc)
            fitted = load(Path(tmp) / "model")
        vars(self).update({k: v for k, v in vars(fitted).items() if k != "config"})
        return self


def create(seed: int = 0, nproc: int = 2, **options: Any) -> DistributedThawRecommender:
    """A DistributedThawRecommender from registry-style options (see thaw_model.create)."""
    from thaw.models.thaw_model import create as create_thaw

    return DistributedThawRecommender(create_thaw(seed=seed, **options).config, nproc=nproc)


# ---------------------------------------------------------------------- the worker program
def _fit_job(values: dict[str, Any], parallel: Parallel) -> ThawRecommender:
    model = ThawRecommender(ThawConfig.from_dict(values["config"]))
    return model.fit(values["data"], user_ids=values["user_ids"], item_ids=values["item_ids"], parallel=parallel)


def _fit_store(url: str, config: ThawConfig, parallel: Parallel) -> ThawRecommender:
    from thaw.data.store import Store
    from thaw.training.train import prepare_from_store

    with Store(url, migrate=parallel.is_main) as store:
        # Rank 0 reads and encodes first (filling the store's embedding cache); the others then
        # find every vector cached instead of all encoding the same texts at once.
        if parallel.is_main:
            prepared = prepare_from_store(store, config)
            parallel.barrier()
        else:
            parallel.barrier()
            prepared = prepare_from_store(store, config)
    config, data, snapshot = prepared
    model = ThawRecommender(config)
    return model.fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids, parallel=parallel)


def main(argv: Sequence[str] | None = None) -> int:
    """Worker entry point: `torchrun ... -m thaw.training.distributed --db URL --out DIR`."""
    parser = argparse.ArgumentParser(prog="python -m thaw.training.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="store URL (the same on every node)")
    parser.add_argument("--job", type=Path, help="pickled FitData job (DistributedThawRecommender)")
    parser.add_argument("--config", default="{}", help="ThawConfig as JSON (sections model, train, encoder)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (written by rank 0)")
    args = parser.parse_args(argv)
    if (args.db is None) == (args.job is None):
        parser.error("give exactly one of --db and --job")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank%(rank)s %(message)s", stream=sys.stderr)
    rank = os.environ.get("RANK", "?")
    old_factory = logging.getLogRecordFactory()

    def record_factory(*a: Any, **k: Any) -> logging.LogRecord:
        record = old_factory(*a, **k)
        record.rank = rank
        return record

    logging.setLogRecordFactory(record_factory)
    for noisy in ("alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    job = pickle.loads(args.job.read_bytes()) if args.job is not None else None
    config = ThawConfig.from_dict(job["config"] if job is not None else json.loads(args.config))
    parallel = join_group(config.train.seed)
    try:
        model = _fit_job(job, parallel) if job is not None else _fit_store(args.db, config, parallel)
        if parallel.is_main:
            from thaw.training.checkpoint import save

            save(model, args.out)
            history = model.history_
            log.info("trained on %d processes: %d epochs in %.1fs, best %s %s at epoch %d; checkpoint %s",
                     parallel.world_size, len(history.epochs), history.seconds, history.metric,
                     history.best_metric, history.best_epoch, args.out)
        parallel.barrier()
    finally:
        dist.destroy_process_group()
    return 0


def config_json(config: ThawConfig) -> str:
    """The `--config` argument for the worker program."""
    return json.dumps(config.to_dict())


if __name__ == "__main__":
    raise SystemExit(main())

"""`ThawRecommender`: the two-tower cold-start model as an estimator (Recommender + EmbeddingModel)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import scipy.sparse as sp
import torch

from thaw.data.dataset import ItemContent, UserContent
from thaw.models import priors
from thaw.models.base import FitData
from thaw.models.tfidf_text import NAME as TFIDF
from thaw.models.tfidf_text import TfidfTextEncoder
from thaw.models.thaw_features import (
    als_factors,
    fit_attributes,
    normalized,
    pair_times,
    torch_threads,
    transform_attributes,
    width,
)
from thaw.models.tower_data import WHITENING_MIN_ROWS, EntityFeatures, item_table, user_table, whitening
from thaw.models.two_tower import TwoTower, TwoTowerConfig
from thaw.training import feedback, loop, neighbor_ids
from thaw.training.loop import Callback, History, TrainConfig, TrainingData

if TYPE_CHECKING:
    from thaw.training.distributed import Parallel


@dataclass(frozen=True)
class ThawConfig:
    """Everything that defines a thaw model: architecture, training, and the text encoder."""

    model: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    encoder: str | None = "minilm"  # encoder spec for texts that come without vectors

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON)."""
        return {"model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train),
                "encoder": self.encoder}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ThawConfig:
        """A config from plain values; unknown sections or keys are an error."""
        unknown = set(values) - {"model", "train", "encoder"}
        if unknown:
            raise ValueError(f"unknown config sections: {', '.join(sorted(unknown))}")
        model_values = dict(values.get("model", {}))
        bad = set(model_values) - set(TwoTowerConfig.__dataclass_fields__)
        if bad:
            raise ValueError(f"unknown model settings: {', '.join(sorted(bad))}")
        return cls(
            model=TwoTowerConfig(**model_values),
            train=TrainConfig.from_dict(values.get("train", {})),
            encoder=values.get("encoder", "minilm"),
        )


def create(seed: int = 0, **options: Any) -> ThawRecommender:
    """A ThawRecommender for the model registry: `options` name any model/train setting or `encoder`.

    The encoder defaults to none here: the harness hands the model pretrained text vectors
    (`--encoder`); `encoder="tfidf"` replaces them by TF-IDF.
    """
    model_fields = set(TwoTowerConfig.__dataclass_fields__)
    train_fields = set(TrainConfig.__dataclass_fields__)
    model_values = {k: v for k, v in options.items() if k in model_fields}
    train_values = {k: v for k, v in options.items() if k in train_fields}
    unknown = set(options) - model_fields - train_fields - {"encoder"}
    if unknown:
        raise ValueError(f"unknown thaw options: {', '.join(sorted(unknown))}")
    return ThawRecommender(ThawConfig.from_dict(
        {"model": model_values, "train": {"seed": seed} | train_values, "encoder": options.get("encoder")}
    ))


class ThawRecommender:
    """thaw's model: item tower over content (+ id), user tower over history and attributes (+ id).

    Vectors are the towers' `[content | ids | bias]`, then with `popularity_prior` one more
    coordinate: the item's training log-popularity, and the user's prior weight (0 for users with an
    id part; models/priors.py). Follows the sklearn contract: `__init__` stores settings, `fit`
    learns and returns self.
    """

    name = "thaw"

    def __init__(self, config: ThawConfig | None = None) -> None:
        self.config = config

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data: FitData,
        *,
        callback: Callback | None = None,
        user_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
        parallel: Parallel | None = None,
    ) -> Self:
        """Train on `data`; `user_ids` / `item_ids` name the rows (default: their index as text).

        `parallel` makes this one process of a distributed run (thaw.training.distributed).
        """
        config = self.config if self.config is not None else ThawConfig()
        if not isinstance(config, ThawConfig):
            raise TypeError(f"config must be a ThawConfig, got {type(config).__name__}")
        if not isinstance(data, FitData):
            raise TypeError(f"data must be FitData, got {type(data).__name__}")
        user_ids = [str(i) for i in range(data.n_users)] if user_ids is None else list(user_ids)
        item_ids = [str(i) for i in range(data.n_items)] if item_ids is None else list(item_ids)
        if len(user_ids) != data.n_users or len(item_ids) != data.n_items:
            raise ValueError("user_ids / item_ids must name every row of the training matrix")
        self._encoder_cache: Any = None
        self.config_ = config
        self.text_encoder_: TfidfTextEncoder | None = None
        if config.encoder == TFIDF:
            self.text_encoder_ = TfidfTextEncoder(seed=config.train.seed).fit(
                data.items.documents(), np.flatnonzero(data.warm_items)
            )
        self.item_attributes_ = fit_attributes(data.items.attributes, data.warm_items)
        self.user_attributes_ = fit_attributes(data.users.attributes, data.warm_users)
        items = self._item_features(data.items)
        users = self._user_features(data.users)
        model_config = dataclasses.replace(
            config.model,
            n_users=data.n_users,
            n_items=data.n_items,
            text_dim=0 if items.text is None else items.text.shape[1],
            user_text_dim=0 if users.text is None else users.text.shape[1],
            n_item_categories=width(items.categorical),
            n_item_numeric=0 if items.numeric is None else items.numeric.shape[1],
            n_user_categories=width(users.categorical),
            n_user_numeric=0 if users.numeric is None else users.numeric.shape[1],
        )
        model = TwoTower(model_config)
        model.reset_parameters(torch.Generator().manual_seed(config.train.seed))
        enough = items.text is not None and data.warm_items.sum() >= WHITENING_MIN_ROWS * items.text.shape[1]
        if enough and model_config.text_whitening > 0:
            model.set_text_whitening(*whitening(items.text[data.warm_items], model_config.text_whitening))
        if model_config.id_init == "als":
            model.set_id_factors(*als_factors(data, model_config, config.train))
        train = data.train.tocsr().astype(np.float32)
        train.sort_indices()
        training = TrainingData(
            train=train,
            items=items,
            users=users,
            warm_users=np.asarray(data.warm_users, bool),
            warm_items=np.asarray(data.warm_items, bool),
            validation=data.validation,
            validation_items=data.validation_items,
            train_times=None if data.train_events is None else pair_times(train, data.train_events),
        )
        with torch_threads(config.train.threads):
            self.history_: History = loop.train(
                model, training, config.train, callback=callback, parallel=parallel
            )
            # Generated feedback (training/feedback.py) can give cold items a learned id part.
            with_ids, self.feedback_ = feedback.apply(model, training, config.train, self.history_)
            table = item_table(model, items, with_ids)  # (n_items, width + 1)
            self.prior_curves_: dict[str, dict[float, float]] = {}
            if model_config.popularity_prior:  # new users' popularity prior (models/priors.py)
                popularity = priors.log_popularity(train)
                weights, shares, opening_range, self.prior_curves_ = priors.choose_weights(
                    model, table, popularity, training, config.train, adaptive=model_config.adaptive_prior,
                    given=model_config.prior_weights,
                )
                model_config = dataclasses.replace(model_config, prior_weights=weights, opening_range=opening_range)
                table = torch.cat([table, torch.from_numpy(popularity)[:, None]], dim=1)  # (n_items, width + 2)
                if shares is not None:  # opening shares: users hold 0 here (models/priors.py)
                    table = torch.cat([table, torch.from_numpy(shares)[:, None]], dim=1)  # (n_items, width + 3)
        self.item_vectors_ = table
        self.model_ = model
        self.model_config_ = model_config
        self.user_ids_ = user_ids
        self.item_ids_ = item_ids
        self.warm_users_ = training.warm_users
        self.warm_items_ = with_ids  # items with a learned id part
        self.id_sources_ = training.warm_items  # items whose id part was trained: what new items borrow
        self.user_features_ = users
        self._index()
        return self

    def _with_prior(
        self, vectors: torch.Tensor, has_id: np.ndarray, history: sp.csr_matrix, items: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """User vectors (n, width + 1) with the prior coordinate (and a 0 for the opening shares)
        appended when the model has them; `history` columns index rows of `items`."""
        if not self._has_prior:
            return vectors
        positive = np.concatenate([[0], np.cumsum(history.data > 0)])
        n_history = np.diff(positive[history.indptr])  # positive entries per row (scipy's `history > 0` cost 0.13 ms a call)
        config = self.model_config_
        opening = None
        if self._has_openness and history.nnz:
            shares = np.asarray(items[:, self.model_.width + 2], np.float64)
            opening = priors.openness(history, shares, config.opening_range)
        column = priors.user_weights(has_id, n_history, config.prior_weights, opening)
        tail = [torch.from_numpy(column)[:, None]]
        if self._has_openness:
            tail.append(torch.zeros(len(column), 1))
        return torch.cat([vectors, *tail], dim=1)

    @property
    def _has_prior(self) -> bool:
        """True when item vectors carry the popularity coordinate (models/priors.py)."""
        return int(self.item_vectors_.shape[1]) >= self.model_.width + 2

    @property
    def _has_openness(self) -> bool:
        """True when item vectors end in opening shares, after the popularity coordinate."""
        return int(self.item_vectors_.shape[1]) == self.model_.width + 3

    def forget_users(self, user_ids: Sequence[str]) -> int:
        """Erase what the fitted model holds of these users (a deletion); returns how many it knew.

        Their id embedding rows and stored features are zeroed, their ids blanked, and they stop
        being warm, so a person later created under the same id starts from nothing. Shared
        weights keep what these users taught them until the next retraining, which never sees them.
        """
        self._check_fitted()
        wanted = set(user_ids)
        rows = [i for i, u in enumerate(self.user_ids_) if u in wanted]
        if not rows:
            return 0
        index = torch.tensor(rows, dtype=torch.int64)
        with torch.no_grad():
            if self.model_.user_id is not None:
                self.model_.user_id.weight[index] = 0.0
        users = self.user_features_
        for array in (users.text, users.numeric):
            if array is not None:
                array[rows] = 0.0
        if users.categorical is not None:
            categorical = users.categorical.tolil()
            categorical[rows] = 0
            self.user_features_ = dataclasses.replace(users, categorical=categorical.tocsr())
        self.warm_users_ = self.warm_users_.copy()
        self.warm_users_[rows] = False
        gone = set(rows)
        self.user_ids_ = ["" if i in gone else u for i, u in enumerate(self.user_ids_)]
        self._index()
        return len(rows)

    def _index(self) -> None:
        """Id -> training row, for ids that own a learned id part (warm at fit time)."""
        self.user_index_ = {u: i for i, u in enumerate(self.user_ids_) if self.warm_users_[i]}
        self.item_index_ = {t: i for i, t in enumerate(self.item_ids_) if self.warm_items_[i]}

    # ------------------------------------------------------------------ Recommender
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(len(users), n_items) scores of training-time users against the training catalogue."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        history = sp.csr_matrix(history, dtype=np.float32)
        if history.shape != (len(users), len(self.item_ids_)):
            raise ValueError(f"history must be (len(users), {len(self.item_ids_)}), got {history.shape}")
        with torch_threads(self.config_.train.threads):
            vectors = user_table(
                self.model_, self.item_vectors_, history, self.user_features_, users, users,
                self.warm_users_[users], max_history=self.config_.train.max_eval_history,
            )
            vectors = self._with_prior(vectors, self.warm_users_[users], history, self.item_vectors_)
            return (vectors @ self.item_vectors_.T).numpy()

    # ------------------------------------------------------------------ EmbeddingModel
    def encode_items(self, content: ItemContent, item_ids: list[str]) -> np.ndarray:
        """(n, dim) float32 item vectors: content, plus the id part for items seen in training."""
        self._check_fitted()
        if len(item_ids) != len(content):
            raise ValueError(f"{len(item_ids)} item ids for {len(content)} items")
        features = self._item_features(content)
        index = np.array([self.item_index_.get(t, -1) for t in item_ids], dtype=np.int64)
        with torch_threads(self.config_.train.threads), torch.no_grad():
            out = item_table(self.model_, features, np.zeros(len(item_ids), bool))
            known = np.flatnonzero(index >= 0)
            if len(known):
                out[known] += self.model_.item_id_part(torch.from_numpy(index[known]))
            new = np.flatnonzero(index < 0)
            if len(new) and (self.history_.cold_ids or {}).get("weight"):
                # Borrowed id part (training/neighbor_ids.py): as cold items got at fit time.
                sources = getattr(self, "id_sources_", self.warm_items_)
                width = self.model_.width + 1
                out[new] += neighbor_ids.borrowed_part(
                    self.model_, out[new], self.item_vectors_[:, :width], sources, self.history_.cold_ids
                )
            if self._has_prior:  # training popularity (and opening share) of known items; 0 for new ones
                tail = torch.zeros(len(item_ids), self.item_vectors_.shape[1] - out.shape[1])
                tail[known] = self.item_vectors_[torch.from_numpy(index[known]), out.shape[1] :]
                out = torch.cat([out, tail], dim=1)
        return out.numpy().astype(np.float32)

    def encode_users(
        self, content: UserContent, user_ids: list[str], history: sp.csr_matrix, item_vectors: np.ndarray
    ) -> np.ndarray:
        """(n, dim) float32 user vectors from attributes, current history and (warm) id."""
        self._check_fitted()
        if len(user_ids) != len(content):
            raise ValueError(f"{len(user_ids)} user ids for {len(content)} users")
        history = sp.csr_matrix(history, dtype=np.float32)
        if history.shape != (len(user_ids), len(item_vectors)):
            raise ValueError(
                f"history must be (n_users, n_catalogue) = ({len(user_ids)}, {len(item_vectors)}), "
                f"got {history.shape}"
            )
        features = self._user_features(content)
        index = np.array([self.user_index_.get(u, -1) for u in user_ids], dtype=np.int64)
        table = torch.from_numpy(np.asarray(item_vectors, dtype=np.float32))
        with torch_threads(self.config_.train.threads):
            out = user_table(
                self.model_, table, history, features, np.arange(len(user_ids)),
                np.maximum(index, 0), index >= 0, max_history=self.config_.train.max_eval_history,
            )
            out = self._with_prior(out, index >= 0, history, item_vectors)
        return out.numpy().astype(np.float32)

    def item_queries(self, vectors: np.ndarray) -> np.ndarray:
        """Item vectors (n, dim) as queries for the items most similar to them: (n, dim) float32.

        The item bias and the popularity prior are for users (a user vector holds 1 and its prior
        weight there); left in an item query they would add popular-times-popular to every score
        and push new items, whose prior is 0, out of "similar". Zeroed, similarity is the towers'.
        """
        self._check_fitted()
        out = np.array(vectors, dtype=np.float32, copy=True)
        out[:, self.model_.width :] = 0.0  # the bias, then the prior when the model has one
        return out

    @property
    def dim(self) -> int:
        """Length of the vectors `encode_items` / `encode_users` return."""
        self._check_fitted()
        return int(self.item_vectors_.shape[1])

    # ------------------------------------------------------------------ features
    def _item_features(self, content: ItemContent) -> EntityFeatures:
        text = content.text_vectors
        if self.text_encoder_ is not None:  # TF-IDF replaces any pretrained vectors
            text = self.text_encoder_.encode(content.documents())
        elif text is None and self.config_.encoder:
            text = self._encoder().encode(content.documents())
        cat, num = transform_attributes(self.item_attributes_, content.attributes)
        return EntityFeatures(normalized(text), cat, num)

    def _user_features(self, content: UserContent) -> EntityFeatures:
        text = content.text_vectors if self.text_encoder_ is None else None
        fitted_dim = getattr(self, "model_config_", None)
        wants_text = fitted_dim.user_text_dim > 0 if fitted_dim is not None else any(content.texts)
        if text is None and wants_text and self.config_.encoder:
            encoded = self._encoder().encode([t or "" for t in content.texts])
            empty = np.array([not t for t in content.texts])
            encoded[empty] = 0.0  # no text is no signal, not the vector of ""
            text = encoded
        if text is not None and fitted_dim is not None and not wants_text:
            text = None
        cat, num = transform_attributes(self.user_attributes_, content.attributes)
        return EntityFeatures(normalized(text), cat, num)

    def _encoder(self) -> Any:
        if self.text_encoder_ is not None:
            return self.text_encoder_
        if getattr(self, "_encoder_cache", None) is None:
            from thaw.encoders import load_encoder

            self._encoder_cache = load_encoder(self.config_.encoder)
        return self._encoder_cache

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("ThawRecommender is not fitted: call fit() or checkpoint.load() first")

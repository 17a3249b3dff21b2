"""Ranking and distillation losses: pure functions of score matrices and masks.

Every loss takes `logits` (B, C): scores of B users against C candidate items, `positives` (B, C)
bool: the items each user must rank high, and `excluded` (B, C) bool: candidates that are neither
positive nor negative for that user (their other training items).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("softmax", "bpr")


def sampled_softmax(logits: Tensor, positives: Tensor, excluded: Tensor) -> Tensor:
    """Multi-positive sampled softmax: mean over users of −mean log p(positive | candidates)."""
    _check(logits, positives, excluded)
    masked = logits.masked_fill(excluded, float("-inf"))
    log_probs = torch.log_softmax(masked, dim=1)  # (B, C)
    log_probs = log_probs.masked_fill(~positives, 0.0)  # -inf * 0 would be NaN
    n_pos = positives.sum(dim=1)
    has = n_pos > 0
    per_user = -log_probs.sum(dim=1)[has] / n_pos[has]
    return per_user.mean() if len(per_user) else logits.sum() * 0.0


def sample_negatives(
    positives: Tensor, excluded: Tensor, n_per_user: int, generator: torch.Generator
) -> Tensor:
    """(B, n_per_user) candidate indices drawn uniformly from each user's negatives."""
    allowed = (~positives & ~excluded).float()
    empty = allowed.sum(dim=1) == 0
    allowed[empty] = 1.0  # a user with no negative gets arbitrary ones; their pairs are masked later
    return torch.multinomial(allowed, n_per_user, replacement=True, generator=generator)


def positive_pairs(positives: Tensor) -> tuple[Tensor, Tensor]:
    """(rows, cols) of every positive entry."""
    rows, cols = torch.nonzero(positives, as_tuple=True)
    return rows, cols


def bpr(
    logits: Tensor, positives: Tensor, excluded: Tensor, generator: torch.Generator
) -> Tensor:
    """Bayesian personalised ranking: −log σ(s_pos − s_neg), one sampled negative per positive."""
    _check(logits, positives, excluded)
    rows, cols = positive_pairs(positives)
    if len(rows) == 0:
        return logits.sum() * 0.0
    negatives = sample_negatives(positives, excluded, int(positives.sum(1).max()), generator)
    # The k-th positive of a user is paired with that user's k-th sampled negative.
    rank = _rank_within_row(rows)
    neg_cols = negatives[rows, rank]
    diff = logits[rows, cols] - logits[rows, neg_cols]
    return F.softplus(-diff).mean()


def aldi_distillation(
    student: Tensor,
    teacher: Tensor,
    positives: Tensor,
    excluded: Tensor,
    teacher_weight: Tensor,
    generator: torch.Generator,
    *,
    rank_weight: float = 1.0,
    rating_weight: float = 0.0,
) -> Tensor:
    """ALDI's ranking and rating-distribution aligning of a student to a (detached) teacher.

    For each positive (u, i) with a sampled negative j: the student's rank distance
    s(u,i) − s(u,j) is pulled towards σ(teacher distance) by binary cross-entropy, and (with
    `rating_weight`) its raw scores towards the teacher's by L1. `teacher_weight` (C,) says how
    much each positive item's teacher is trusted (ALDI's teacher-qualifying weight).
    """
    _check(student, positives, excluded)
    if teacher.shape != student.shape:
        raise ValueError("teacher and student scores must have the same shape")
    rows, cols = positive_pairs(positives)
    if len(rows) == 0:
        return student.sum() * 0.0
    negatives = sample_negatives(positives, excluded, int(positives.sum(1).max()), generator)
    neg_cols = negatives[rows, _rank_within_row(rows)]
    teacher = teacher.detach()
    weight = teacher_weight[cols]
    s_pos, s_neg = student[rows, cols], student[rows, neg_cols]
    t_pos, t_neg = teacher[rows, cols], teacher[rows, neg_cols]
    rank = F.binary_cross_entropy_with_logits(
        s_pos - s_neg, torch.sigmoid(t_pos - t_neg), reduction="none"
    )
    loss = rank_weight * (weight * rank).mean()
    if rating_weight:
        loss = loss + rating_weight * ((t_pos - s_pos).abs() + (t_neg - s_neg).abs()).mean()
    return loss


def teacher_weights(counts: Tensor, scale: float, cap: float) -> Tensor:
    """ALDI's teacher-qualifying weight: tanh(count / scale), capped at tanh(cap)."""
    if scale <= 0 or cap <= 0:
        raise ValueError("scale and cap must be > 0")
    return torch.tanh(counts / scale).clamp(max=float(torch.tanh(torch.tensor(cap))))


def _rank_within_row(rows: Tensor) -> Tensor:
    """For sorted row indices, the position of each entry within its row: 0, 1, 2, ..."""
    starts = torch.searchsorted(rows, rows, right=False)
    return torch.arange(len(rows)) - starts


def _check(logits: Tensor, positives: Tensor, excluded: Tensor) -> None:
    if logits.shape != positives.shape or logits.shape != excluded.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)}, positives {tuple(positives.shape)} and excluded "
            f"{tuple(excluded.shape)} must have the same shape"
        )
    if (positives & excluded).any():
        raise ValueError("an item cannot be both positive and excluded for the same user")

"""Ranking and distillation losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from thaw.training import losses


def _masks(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def test_sampled_softmax_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    positives = _masks([[1, 0, 0, 0], [0, 1, 1, 0]])
    excluded = _masks([[0, 0, 0, 1], [0, 0, 0, 0]])  # user 0's other training item: not a negative
    user0 = -(2.0 - math.log(math.exp(2) + math.exp(1) + 1))
    user1 = -math.log(1 / 4)  # both positives have p = 1/4
    got = losses.sampled_softmax(logits, positives, excluded)
    assert got.item() == pytest.approx((user0 + user1) / 2, rel=1e-6)


def test_sampled_softmax_ignores_users_without_positives_and_rejects_overlap() -> None:
    logits = torch.zeros(2, 3)
    positives = _masks([[1, 0, 0], [0, 0, 0]])
    excluded = _masks([[0, 0, 0], [0, 0, 0]])
    assert losses.sampled_softmax(logits, positives, excluded).item() == pytest.approx(math.log(3))
    with pytest.raises(ValueError, match="both positive and excluded"):
        losses.sampled_softmax(logits, positives, positives)
    with pytest.raises(ValueError, match="same shape"):
        losses.sampled_softmax(logits, positives[:, :2], excluded)


def test_bpr_pairs_each_positive_with_an_allowed_negative() -> None:
    generator = torch.Generator().manual_seed(0)
    # Only candidate 2 is a negative for the single user: the loss is exact.
    logits = torch.tensor([[3.0, 1.0, 0.5, 9.0]], requires_grad=True)
    positives = _masks([[1, 1, 0, 0]])
    excluded = _masks([[0, 0, 0, 1]])
    loss = losses.bpr(logits, positives, excluded, generator)
    expected = (math.log1p(math.exp(-2.5)) + math.log1p(math.exp(-0.5))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 3] == 0.0  # excluded never enters


def test_aldi_distillation_pulls_student_towards_teacher_order() -> None:
    generator = torch.Generator().manual_seed(0)
    positives = _masks([[1, 0]])
    excluded = _masks([[0, 0]])
    teacher = torch.tensor([[4.0, 0.0]])  # the teacher is sure item 0 beats item 1
    student = torch.tensor([[0.0, 1.0]], requires_grad=True)
    weight = torch.ones(2)
    loss = losses.aldi_distillation(student, teacher, positives, excluded, weight, generator, rating_weight=0.1)
    loss.backward()
    assert student.grad is not None
    assert student.grad[0, 0] < 0 < student.grad[0, 1]  # descent raises item 0, lowers item 1
    zero = losses.aldi_distillation(student, teacher, positives, excluded, torch.zeros(2), generator)
    assert zero.item() == 0.0  # an untrusted teacher teaches nothing


def test_teacher_weights_grow_with_interactions_and_are_capped() -> None:
    w = losses.teacher_weights(torch.tensor([0.0, 1.0, 5.0, 1000.0]), scale=5.0, cap=1.0)
    assert w[0] == 0.0 and w[1] < w[2] <= w[3]
    assert w[3].item() == pytest.approx(math.tanh(1.0), rel=1e-6)
    with pytest.raises(ValueError):
        losses.teacher_weights(torch.ones(1), scale=0.0, cap=1.0)

# Copyright 2026 The fedjax_m3t Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Membership-inference audit of trained models: loss threshold and offline LiRA.

Two attacks, each scoring how likely an example (a student) or a group of
examples (a school) was in the training data:

  * the loss-threshold attack (Yeom et al., 2018, arXiv:1709.01604): score =
    -loss, members have lower loss;
  * offline LiRA (Carlini et al., 2022, "Membership Inference Attacks From First
    Principles", arXiv:2112.03570, Sec. VI offline variant): reference models are
    trained on data WITHOUT the targets; for each target example the reference
    models' logit-scaled confidences phi = log(p / (1 - p)), p = exp(-loss), are fit
    by a Gaussian N(mu_out, sigma_out^2) (per example, or with one global sigma
    when there are few references, as the paper recommends), and the one-sided
    test scores the target model's phi by how far above the OUT distribution it
    lies: score = (phi - mu_out) / sigma_out (monotone in Pr[Z < phi], so the ROC
    is the test's).

`evaluate` reports the ROC AUC and the TPR at FPR 1e-2 and 1e-3 (the largest TPR
at a threshold whose FPR is at most the target, as Carlini et al. report it);
`user_scores` lifts example scores to users (a school's score is the mean of
its students'), for the user-level (institution) audit. Everything here runs on
the host after training (numpy), never inside a round.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fedjax_m3t import metrics, tasks
from fedjax_m3t import typing as t
from fedjax_m3t.models import interface

FPRS = (1e-2, 1e-3)


class AttackResult(NamedTuple):
    """An attack's ROC summary.

    Attributes:
      auc: area under the ROC curve (0.5 = chance).
      tpr: {fpr: the largest TPR at a threshold with FPR <= fpr}, for FPRS.
      count: (members, non-members) scored.
    """

    auc: float
    tpr: dict
    count: tuple[int, int]


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1).

    Args:
      labels: [n] bool, True for members.
      scores: [n], higher = more likely a member; ties share a threshold.
    """
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # The last index of each run of equal scores: a threshold takes a whole tie.
    last = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(scores) - 1]
    tp = np.cumsum(sorted_labels)[last]
    fp = np.cumsum(~sorted_labels)[last]
    pos, neg = max(labels.sum(), 1), max((~labels).sum(), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """The largest TPR over thresholds whose FPR is at most `fpr`."""
    fprs, tprs = roc_curve(labels, scores)
    return float(tprs[fprs <= fpr].max())


def evaluate(labels: np.ndarray, scores: np.ndarray) -> AttackResult:
    """AUC and TPR at FPRS of membership scores.

    Args:
      labels: [n] bool, True for members.
      scores: [n] (higher = member).
    """
    labels = np.asarray(labels, bool)
    return AttackResult(
        auc=metrics.roc_auc(labels, scores),
        tpr={f: tpr_at_fpr(labels, scores, f) for f in FPRS},
        count=(int(labels.sum()), int((~labels).sum())),
    )


def loss_scores(losses: np.ndarray) -> np.ndarray:
    """The loss-threshold attack's scores: -loss [n]."""
    return -np.asarray(losses, np.float64)


def logit_confidence(losses: np.ndarray) -> np.ndarray:
    """phi = log(p / (1 - p)) with p = exp(-loss), computed stably: [n] or [R, n]."""
    losses = np.maximum(np.asarray(losses, np.float64), 1e-12)
    return -losses - np.log(-np.expm1(-losses))


def offline_lira_scores(
    target_losses: np.ndarray, reference_losses: np.ndarray, *, global_variance: bool = False
) -> np.ndarray:
    """Offline LiRA's one-sided scores against OUT-only reference models.

    Args:
      target_losses: [n], the audited model's loss on each target example.
      reference_losses: [R, n], R >= 2 reference models' losses on the same examples,
        none of which was in any reference model's training data.
      global_variance: one sigma for every example (the pooled variance), better
        with few references.

    Returns:
      [n] scores (phi - mu_out) / sigma_out.

    Raises:
      ValueError: for fewer than 2 reference models or mismatched shapes.
    """
    reference = logit_confidence(reference_losses)
    if reference.ndim != 2 or reference.shape[0] < 2:
        raise ValueError(f"Offline LiRA needs reference losses [R >= 2, n], got {reference.shape}.")
    target = logit_confidence(target_losses)
    if target.shape != reference.shape[1:]:
        raise ValueError(f"Target losses {target.shape} and references {reference.shape} differ.")
    mu = reference.mean(axis=0)
    var = reference.var(axis=0, ddof=1)
    if global_variance:
        var = np.full_like(var, var.mean())
    return (target - mu) / np.sqrt(var + 1e-12)


def user_scores(
    scores: np.ndarray, users: np.ndarray, members: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """User-level scores: the mean of each user's example scores.

    Args:
      scores: [n] example scores.
      users: [n] int user (school) ids.
      members: [n] bool example labels (constant within a user).

    Returns:
      (user labels bool [U], user scores [U]) over the sorted distinct users.

    Raises:
      ValueError: if a user has both member and non-member examples.
    """
    users = np.asarray(users)
    ids, inverse = np.unique(users, return_inverse=True)
    total = np.bincount(inverse, weights=np.asarray(scores, np.float64))
    count = np.bincount(inverse)
    member = np.bincount(inverse, weights=np.asarray(members, np.float64))
    if np.any((member > 0) & (member < count)):
        raise ValueError("A user has both member and non-member examples.")
    return member > 0, total / count


def audit(
    members: np.ndarray,
    target_losses: np.ndarray,
    reference_losses: np.ndarray | None = None,
    users: np.ndarray | None = None,
    *,
    global_variance: bool = False,
) -> dict[str, AttackResult]:
    """The audit table: {'<attack>/<level>': AttackResult}.

    Args:
      members: [n] bool, which target examples the audited model trained on.
      target_losses: [n] its losses on them.
      reference_losses: [R, n] OUT reference models' losses (None: no LiRA).
      users: [n] user (school) ids for the user-level rows (None: example level only).
      global_variance: see offline_lira_scores.

    Returns:
      'loss/example', 'lira/example' (with references), and '/user' rows with users.
    """
    attacks = {"loss": loss_scores(target_losses)}
    if reference_losses is not None:
        attacks["lira"] = offline_lira_scores(
            target_losses, reference_losses, global_variance=global_variance
        )
    out = {}
    for name, scores in attacks.items():
        out[f"{name}/example"] = evaluate(members, scores)
        if users is not None:
            out[f"{name}/user"] = evaluate(*user_scores(scores, users, members))
    return out


def example_losses(model: interface.Model, params: t.Params, examples: dict) -> jax.Array:
    """Each example's loss summed over its labelled tasks: float32 [n] (0 for padding).

    Args:
      model: the model.
      params: the params to audit (global, or a client's personalised view).
      examples: leaves [n, ...] in the layout of fedjax_m3t.data.spec.
    """
    predictions = model.apply(params, examples, rng=None, train=False)
    total = jnp.zeros(examples["mask"].shape, jnp.float32)
    for task in model.spec.tasks:
        labelled = examples["mask"] & examples["label_mask"][task.name]
        loss = tasks.per_example_loss(task, predictions[task.name], examples["labels"][task.name])
        total = total + jnp.where(labelled, loss, 0.0)
    return total


def format_table(results: dict[str, AttackResult], fprs: Sequence[float] = FPRS) -> str:
    """The audit as aligned text lines (attack/level, AUC, TPR at each FPR)."""
    head = f"{'attack/level':<16} {'AUC':>6} " + " ".join(f"{'TPR@' + str(f):>10}" for f in fprs)
    rows = [
        f"{k:<16} {r.auc:6.3f} " + " ".join(f"{r.tpr[f]:10.4f}" for f in fprs)
        for k, r in results.items()
    ]
    return "\n".join([head, *rows])

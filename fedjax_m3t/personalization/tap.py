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
"""TAP: Two-Stage Adaptive Personalization (arXiv:2509.26524, code lee3296/TAP).

Each client keeps a persistent personal model v besides the regular model, which
is FedAvg's (trained from the received global model and sent). A sampled client,
each round:

  1. trains the regular model exactly as FedAvg does (same loop, same keys) and
     sends its delta: the server aggregates the regular models only, each module
     over the clients that used it (the selective mean of leaf_weights);
  2. stage 1, adaptive replacement: for each task t, if
     loss_t(regular) + margin_t < loss_t(v) on its train data, copies the regular
     model's components used by t into v (`replace`), and counts it;
  3. trains v for the same local steps with key fold_in(client key, PERSONAL_TAG)
     (personal_model.personal_trainer with lambda 0, Ditto's machinery).

Stage 2, post-FL distillation, is an evaluation-time step (`adapt`, as FedAvg+FT):
the teacher is the current global model fine-tuned `steps` local steps (the
"regular + local" baseline); the personal model is fine-tuned `steps` steps of
task loss + w_t * distillation(teacher -> student), w_t = weight * (boost if t in
boost_tasks else 1):
  * multiclass: T^2 KL(softmax(teacher / T) || softmax(student / T)), mean over
    the task's labelled real examples (the code's batchmean);
  * binary: the same KL over the two classes (sigmoid logits);
  * regression (the paper has none; its image generation is MSE to the image and
    distils by the same KL call): MSE between student and teacher predictions.

"Components used by task t" on our module paths: the modules that
`Model.module_usage` counts > 0 on the client's examples labelled for t (its
encoders of the modalities those examples carry, 'backbone', 'adapters', and any
leaf under no listed module, as leaf_weights does), plus 'heads/<t>', minus every
other task's head. TAP's `track_components` records the same for its modules:
the encoders of the modalities fed, `shared_proj`, the MoTE/MoME experts and
transformer blocks the task passes through, and the task's head; our single
backbone and LoRA factors are shared by every task, so replacing for any task
replaces them.

Mismatched architectures: TAP's server holds the union of modules and a client
only its own. Our params hold every module at every client, but a module a
client's data never reaches gets no gradient and aggregation weight 0
(Model.module_usage -> local_training.leaf_weights), so the server averages each
module over the clients that hold (use) it, as TAP's aggregate_updates divides by
each module's own weight; and such a module is no component of the client's
tasks, so stage 1 never copies it.

Metrics: 'replaced/<task>' is 1.0 for a client that replaced task t's components
this round (the round reports the example-weighted fraction of the cohort); the
per-client totals are TAPState.replacements (TAP's count_replacements.py).

Task map (we have no generation heads): TAP's classification -> our binary and
multiclass tasks; its image generation (MSE) -> our regression tasks; its text
generation -> nothing. The code's per-task settings key on task kinds
('text_classification': smaller margin and x500 distillation weight;
'image_generation': smaller margin); ours name tasks: `small_margin_tasks` and
`boost_tasks` (default none).

Where we follow the code rather than the paper, or differ from both:
  * margins 0.01 / 0.005 and weight 2e-3 (x500) are the code's FLAVA settings;
  * the code compares the regular model's mean training loss of this round with
    the personal model's mean training loss of its previous participation
    (teacher_history / student_history); we compare both models' per-task mean
    losses on the client's whole train data just before v trains (eval mode):
    the same test on current models, and no stale history in the client state;
  * the code reshuffles v's data after a replacement (a different seed); we keep
    the key (step 3 is the same whatever stage 1 did);
  * the code's personal model in round 0 starts fresh; ours starts at the initial
    params (as Ditto's); stage 1 still runs in a client's first round;
  * the code trains with AdamW, gradient accumulation and clipping; ours with the
    configured client optimizer. As in the code, v's per-round training is the task
    loss only (train_client adds no KL; the KL is train_finetune's, stage 2);
  * with a client transform in FedOpt (e.g. DP clipping and noise), the regular
    model stage 1 compares against is the one the client sends (received - delta);
  * stage 2 fine-tunes `steps` steps (the code: 50 iterations) from the model
    evaluated now, and the student's keys are the context's (so with weight 0 it
    is plain fine-tuning of v: fine_tune.fine_tuning); the teacher's are
    fold_in(context key, TEACHER_TAG).

A client trains two models each round, so TAP reads twice FedAvg's examples per
round, plus 2 x steps at evaluation.
"""

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fedjax_m3t import tasks, tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.models import interface
from fedjax_m3t.personalization import fine_tune, personal_model

# After personal_model.PERSONAL_TAG (3).
TEACHER_TAG = 4


class TAPState(NamedTuple):
    """A TAP client's state.

    Attributes:
      local: the regular model's local leaves (None elsewhere; all None for FedAvg).
      personal: the personal model v, every trainable leaf (None at frozen ones).
      replacements: {'tasks': {task: int32 scalar} rounds in which stage 1 replaced
        the task's components, 'modules': {module: int32 scalar} rounds in which
        it replaced any leaf of the module (tree.module_names at depth 2, e.g.
        'heads/a', 'encoders/tabular', 'backbone/layer_0')}.
    """

    local: t.PyTree
    personal: t.PyTree
    replacements: dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class TAPConfig:
    """TAP's settings (the code's FLAVA values by default).

    Attributes:
      margin: stage 1's margin for most tasks.
      small_margin: the margin of `small_margin_tasks`.
      small_margin_tasks: task names with the smaller margin.
      replacement: False disables stage 1 (ablation).
      distill: False disables stage 2's distillation term (ablation
        `ablation_no_distill`: stage 2 is then plain fine-tuning of v).
      distill_weight: w.
      distill_boost: multiplier of w for `boost_tasks`.
      boost_tasks: task names with w * distill_boost.
      temperature: T.
      steps: stage 2's fine-tuning steps (teacher and student each).
    """

    margin: float = 0.01
    small_margin: float = 0.005
    small_margin_tasks: tuple[str, ...] = ()
    replacement: bool = True
    distill: bool = True
    distill_weight: float = 2e-3
    distill_boost: float = 500.0
    boost_tasks: tuple[str, ...] = ()
    temperature: float = 1.0
    steps: int = 5

    def margins(self, names: Sequence[str]) -> dict[str, float]:
        """{task: margin}."""
        return {
            n: self.small_margin if n in self.small_margin_tasks else self.margin for n in names
        }

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """{task: distillation weight}; 0 everywhere when distill is off."""
        scale = lambda n: self.distill_boost if n in self.boost_tasks else 1.0
        return {n: self.distill_weight * scale(n) * float(self.distill) for n in names}


def per_task_losses(model: interface.Model, params: t.Params, examples: dict) -> dict:
    """{task: float32 scalar} mean loss over the client's labelled real examples (eval mode)."""
    predictions = model.apply(params, examples, rng=None, train=False)
    return tasks.task_losses(model.spec.tasks, predictions, examples)[1]


def task_components(model: interface.Model, examples: dict, task: str, mask: t.PyTree) -> t.PyTree:
    """bool scalar per leaf of `mask`: is the leaf a component task `task` uses here?

    See the module docstring: module_usage on the examples labelled for the task,
    the task's head in, the other tasks' heads out.
    """
    labelled = {**examples, "mask": examples["mask"] & examples["label_mask"][task]}
    usage = dict(model.module_usage(labelled))
    for other in model.spec.tasks:
        usage[f"heads/{other.name}"] = jnp.float32(other.name == task)
    weights = local_training.leaf_weights(usage, jnp.float32(1.0), tree.select(mask, mask))
    return jax.tree.map(lambda w: w > 0, weights)


def replace(
    model: interface.Model,
    regular: t.Params,
    personal: t.Params,
    examples: dict,
    mask: t.PyTree,
    margins: dict[str, float],
) -> tuple[t.Params, dict[str, jax.Array], t.PyTree]:
    """Stage 1: the personal model after adaptive replacement.

    Args:
      model: the model.
      regular, personal: full params of the two models.
      examples: the client's train examples, leaves [n, ...].
      mask: static bool pytree of the leaves that may be replaced (the trainable ones).
      margins: {task: margin}.

    Returns:
      (new personal full params, {task: bool scalar replaced}, bool scalar per leaf
      of `mask`: replaced by some task).
    """
    regular_loss = per_task_losses(model, regular, examples)
    personal_loss = per_task_losses(model, personal, examples)
    replaced = {n: regular_loss[n] + margins[n] < personal_loss[n] for n in margins}
    copy = jax.tree.map(lambda m: jnp.zeros((), bool), tree.select(mask, mask))
    for name, flag in replaced.items():
        used = task_components(model, examples, name, mask)
        copy = jax.tree.map(lambda c, u, f=flag: c | (u & f), copy, used)
    chosen = jax.tree.map(jnp.where, copy, tree.select(mask, regular), tree.select(mask, personal))
    return tree.merge(mask, chosen, personal), replaced, copy


def _module_counts(params: t.PyTree) -> dict[str, jax.Array]:
    return {m: jnp.zeros((), jnp.int32) for m in sorted(tree.module_names(params))}


def _count(counts: dict, replaced: dict, copy: t.PyTree) -> dict:
    flags = dict(zip(tree.leaf_paths(copy), jax.tree.leaves(copy), strict=True))
    modules = {}
    for name, count in counts["modules"].items():
        hits = [f for p, f in flags.items() if p == name or p.startswith(name + "/")]
        hit = jnp.any(jnp.stack(hits)) if hits else jnp.zeros((), bool)
        modules[name] = count + hit.astype(jnp.int32)
    tasks_ = {n: c + replaced[n].astype(jnp.int32) for n, c in counts["tasks"].items()}
    return {"tasks": tasks_, "modules": modules}


def distillation(model: interface.Model, weights: dict[str, float], temperature: float):
    """(student predictions, teacher predictions, batch) -> sum_t w_t * distill_t (module doc)."""
    temp = float(temperature)

    def loss(student, teacher, batch):
        total = jnp.zeros((), jnp.float32)
        for task in model.spec.tasks:
            w = weights[task.name]  # 0 is computed too: it must change nothing.
            s, q = student[task.name], jax.lax.stop_gradient(teacher[task.name])
            if task.kind == "regression":
                per = jnp.square(s - q)
            else:
                if task.kind == "binary":
                    s, q = (
                        jnp.stack([jnp.zeros_like(s), s], -1),
                        jnp.stack([jnp.zeros_like(q), q], -1),
                    )
                log_p = jax.nn.log_softmax(q / temp, -1)
                per = jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(s / temp, -1)), -1)
                per = per * temp**2
            real = batch["mask"] & batch["label_mask"][task.name]
            per = jnp.where(real, per, 0.0)
            total = total + w * jnp.sum(per) / jnp.maximum(jnp.sum(real.astype(jnp.float32)), 1.0)
        return total

    return loss


def tap(
    model: interface.Model,
    *,
    client_optimizer: optax.GradientTransformation,
    server_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    config: TAPConfig = TAPConfig(),
    **fed_opt_kwargs,
) -> base.FederatedAlgorithm:
    """Builds TAP over FedOpt (FedAvg with server_optimizer sgd(1)).

    Args:
      model: the model.
      client_optimizer, server_optimizer, local: the regular model's FedOpt settings
        (the personal model and stage 2 use client_optimizer and local's batches too).
      config: TAP's settings.
      **fed_opt_kwargs: policy, aggregator, ... passed to `fed_opt.fed_opt`.

    Returns:
      The algorithm; its client state is a TAPState, `personalize` returns v and
      `adapt` is stage 2 (config.steps = 0: v itself).
    """
    inner = fed_opt.fed_opt(
        model,
        client_optimizer=client_optimizer,
        server_optimizer=server_optimizer,
        local=local,
        **fed_opt_kwargs,
    )
    policy = inner.policy
    names = [task.name for task in model.spec.tasks]
    margins = config.margins(names)
    train_personal = personal_model.personal_trainer(model, policy, client_optimizer, local, 0.0)

    def init_client_state(params):
        v = tree.select(policy.trainable, params)
        counts = {"tasks": {n: jnp.zeros((), jnp.int32) for n in names}}
        counts["modules"] = _module_counts(v)
        return TAPState(inner.init_client_state(params), v, counts)

    def client_update(received, client_state, examples, context):
        output = inner.client_update(received, client_state.local, examples, context)
        trained = jax.tree.map(jnp.subtract, tree.select(policy.federated, received), output.delta)
        regular = tree.merge(
            policy.local, output.client_state, tree.merge(policy.federated, trained, received)
        )
        v = tree.merge(policy.trainable, client_state.personal, received)
        counts = client_state.replacements
        replaced = {n: jnp.zeros((), bool) for n in names}
        if config.replacement:
            v, replaced, copy = replace(model, regular, v, examples, policy.trainable, margins)
            counts = _count(counts, replaced, copy)
        v, losses, _ = train_personal(received, tree.select(policy.trainable, v), examples, context)
        metrics = {
            **output.metrics,
            "personal_loss": jnp.mean(losses),
            **{f"replaced/{n}": f.astype(jnp.float32) for n, f in replaced.items()},
        }
        state = TAPState(output.client_state, v, counts)
        return output._replace(client_state=state, metrics=metrics)

    def personalize(received, client_state):
        return tree.merge(policy.trainable, client_state.personal, received)

    algorithm = inner._replace(
        init_client_state=init_client_state,
        client_update=client_update,
        personalize=personalize,
    )
    return algorithm._replace(
        adapt=post_fl_distillation(model, algorithm, inner, client_optimizer, local, config)
    )


def post_fl_distillation(
    model: interface.Model,
    algorithm: base.FederatedAlgorithm,
    regular: base.FederatedAlgorithm,
    optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    config: TAPConfig,
) -> base.AdaptFn:
    """Stage 2 as an AdaptFn (see the module docstring).

    Args:
      model: the model.
      algorithm: TAP (its personalize gives v; its policy the leaves to tune).
      regular: the regular algorithm (FedOpt: its personalize gives the teacher's start).
      optimizer, local: the fine-tuning optimizer and batches (local_steps -> config.steps).
      config: steps, weights, temperature, distill.

    Returns:
      adapt(received, client_state: TAPState, examples [n, ...], context) -> v's params.
    """
    weights = config.weights([task.name for task in model.spec.tasks])
    plain = fine_tune.fine_tuning(model, algorithm, optimizer, local, config.steps)
    if not config.distill or config.steps == 0:
        return plain
    teacher_tune = fine_tune.fine_tuning(model, regular, optimizer, local, config.steps)
    distil = distillation(model, weights, config.temperature)
    steps = dataclasses.replace(local, local_steps=config.steps)

    def adapt(received, client_state, examples, context):
        teacher_context = context._replace(rng=jax.random.fold_in(context.rng, TEACHER_TAG))
        teacher = teacher_tune(received, client_state.local, examples, teacher_context)

        def loss(params, batch, loss_context):
            student = model.apply(params, batch, rng=loss_context.rng, train=True)
            target = model.apply(teacher, batch, rng=None, train=False)
            value, stats = tasks.scaled_loss(
                model.spec.tasks, student, batch, loss_context.task_scale
            )
            return value + distil(student, target, batch), stats

        params = algorithm.personalize(received, client_state)
        loss_context = local_training.LossContext(
            rng=context.rng,
            received=received,
            task_scale=tasks.own_task_scale(model.spec.tasks, examples),
        )
        tuned, _, _ = local_training.run_local_steps(
            loss, optimizer, algorithm.policy.trainable, params, examples, loss_context, steps
        )
        return tuned

    return adapt

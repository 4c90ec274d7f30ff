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
"""Non-federated references on the federation's own per-client test sets.

  * `centralised`: the same model trained on the POOLED train data of every client
    (what a single data warehouse could do), for the same number of example-steps
    as the federated run;
  * `local_only`: every client trains its own model from the same init on only its
    own data, for the local steps it would have run in the federated run.

Both reuse the engine: the training is `local_training.make_client_update` (the
one local loop) run by a client that owns every trainable leaf, and the scoring
is `evaluation.predict` / `evaluation.score` on `federation.test`, so the numbers
are comparable row by row with `SimulationResult.global_report`.

Example-step accounting (the unit of training compute). One local step of client
c reads min(batch_size, n_c) real examples (n_c with batch_size=None), so

  federated = rounds * local_steps * (cohort_size / num_clients) * sum_c min(batch_size, n_c)

(exact under full participation, the expectation under uniform cohort sampling;
it equals rounds * cohort_size * local_steps * batch_size when every client holds at
least batch_size examples). The centralised run spends the same total in steps of
batch_size pooled examples: round(example_steps / batch_size) steps (full-batch
steps of all N pooled examples with batch_size=None). A local-only client runs
round(rounds * cohort_size / num_clients) * local_steps steps -- the steps it
would run in the federated run (rounds * local_steps under full participation).
Neither baseline uses FedProx's proximal term (there is no server to stay near).
"""

import dataclasses
import math
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fedjax_m3t import metrics as metrics_lib
from fedjax_m3t import policy as policy_lib
from fedjax_m3t import seeding, tree
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base, local_training
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.evaluation import equity
from fedjax_m3t.evaluation import report as report_lib
from fedjax_m3t.models import interface

if TYPE_CHECKING:  # Only an annotation: the simulation loop imports evaluation.
    from fedjax_m3t.simulation import loop

Policy = policy_lib.ModulePolicy | policy_lib.ResolvedPolicy | None


class BaselineResult(NamedTuple):
    """A baseline's trained params and its test predictions and metrics.

    Attributes:
      params: centralised: the trained params; local-only: the shared init.
      client_params: local-only: each client's trained leaves, [num_clients, ...],
        None at frozen leaves (merge with `tree.merge(policy.trainable, ., params)`);
        centralised: None.
      predictions: {task: [num_clients, n_test] or [num_clients, n_test, K]} on
        `federation.test`, from `evaluation.predict`.
      report: `evaluation.score` of the predictions: pooled over every client's
        test examples and per client.
    """

    params: t.Params
    client_params: t.PyTree
    predictions: dict
    report: report_lib.Report


def pool_examples(data: dict) -> dict:
    """Every client's real examples as one client's, in client order.

    Args:
      data: stacked examples, leaves [num_clients, n, ...].

    Returns:
      Host arrays, leaves [N, ...] with N the number of real examples (all mask True).
    """
    data = jax.device_get(data)
    keep = np.asarray(data["mask"], bool)
    return jax.tree.map(lambda x: np.asarray(x)[keep], data)


def examples_per_step(federation: federation_lib.Federation, batch_size: int | None) -> np.ndarray:
    """int64 [num_clients]: real examples one local step of each client reads."""
    n = federation.num_examples("train")
    return n if batch_size is None else np.minimum(n, batch_size)


def federated_example_steps(
    federation: federation_lib.Federation,
    local: local_training.LocalTrainingConfig,
    *,
    rounds: int,
    cohort_size: int,
) -> float:
    """Example-steps of a federated run (see the module docstring).

    Args:
      federation: the clients' data.
      local: the run's local training config.
      rounds: rounds of the run.
      cohort_size: clients per round.

    Returns:
      rounds * local_steps * cohort_size / num_clients * sum_c min(batch_size, n_c).
    """
    per_round = examples_per_step(federation, local.batch_size).sum() * local.local_steps
    return float(rounds * per_round * cohort_size / federation.num_clients)


def local_steps_per_client(
    num_clients: int, local: local_training.LocalTrainingConfig, *, rounds: int, cohort_size: int
) -> int:
    """Local steps a client runs in a federated run: its expected rounds times local_steps."""
    return int(round(rounds * cohort_size / num_clients)) * local.local_steps


def centralised_steps(example_steps: float, num_pooled: int, batch_size: int | None) -> int:
    """Steps of the centralised run: example_steps / batch, rounded half up.

    The batch is min(batch_size, num_pooled), or num_pooled for batch_size=None.
    """
    if num_pooled == 0:
        return 0
    batch = num_pooled if batch_size is None else min(batch_size, num_pooled)
    return math.floor(example_steps / batch + 0.5)


def _resolve(model: interface.Model, policy: Policy) -> policy_lib.ResolvedPolicy:
    if isinstance(policy, policy_lib.ResolvedPolicy):
        return policy
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    return policy_lib.resolve(policy or policy_lib.ModulePolicy(), shapes)


def _owned(policy: policy_lib.ResolvedPolicy) -> policy_lib.ResolvedPolicy:
    """The policy of a client that owns every trainable leaf: nothing is federated."""
    trainable = policy.trainable
    return policy_lib.ResolvedPolicy(
        federated=jax.tree.map(lambda _: False, trainable),
        local=trainable,
        frozen=policy.frozen,
        labels=jax.tree.map(lambda m: policy_lib.LOCAL if m else policy_lib.FROZEN, trainable),
    )


def _trainer(model, owned, client_optimizer, local, steps):
    """(params, examples [n, ...], rng) -> trained leaves (None at frozen ones)."""
    config = dataclasses.replace(local, local_steps=max(steps, 1))
    update = local_training.make_client_update(model, owned, client_optimizer, config)

    def train(params, examples, rng):
        own = tree.select(owned.local, params)
        if steps == 0:
            return own
        return update(params, own, examples, base.make_context(rng)).client_state

    return train


def _init(model: interface.Model, seed: int) -> t.Params:
    """The federated run's initial params (loop.fresh_state's key)."""
    return model.init(seeding.params_key(seed))


def _key(seed: int) -> t.PRNGKey:
    return jax.random.fold_in(jax.random.key(seed), seeding.BASELINE_TAG)


def centralised(
    model: interface.Model,
    federation: federation_lib.Federation,
    *,
    client_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    example_steps: float,
    policy: Policy = None,
    seed: int = 0,
) -> BaselineResult:
    """The model trained on every client's pooled train data, scored per client.

    Args:
      model: the federated run's model.
      federation: its data; train is pooled, test stays per client [num_clients, n, ...].
      client_optimizer: the federated run's client optimizer; here its state runs
        through all steps (one long optimisation, as a centralised trainer would).
      local: the run's local config; its batch_size is used.
      example_steps: examples to read in all, e.g. `federated_example_steps(...)`;
        the run takes `centralised_steps(...)` steps (example_steps / batch_size).
      policy: the run's module policy (federated and local leaves are trained here,
        frozen ones stay frozen); None trains every leaf.
      seed: the run's seed (the same init as `loop.run`).

    Returns:
      The trained params, their test predictions and report.
    """
    resolved = _owned(_resolve(model, policy))
    pooled = pool_examples(federation.train)
    steps = centralised_steps(example_steps, int(pooled["mask"].shape[0]), local.batch_size)
    train = _trainer(model, resolved, client_optimizer, local, steps)
    params = _init(model, seed)
    trained = jax.jit(train)(params, pooled, _key(seed))
    params = tree.merge(resolved.local, trained, params)
    predictions = report_lib.predict(model, params, federation.test)
    return BaselineResult(
        params, None, predictions, report_lib.score(model, predictions, federation.test)
    )


def local_only(
    model: interface.Model,
    federation: federation_lib.Federation,
    *,
    client_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    rounds: int,
    cohort_size: int | None = None,
    policy: Policy = None,
    seed: int = 0,
    chunk_size: int = 8,
) -> BaselineResult:
    """Every client's own model, trained from the shared init on only its own data.

    Client c trains with key fold_in(fold_in(key(seed), BASELINE_TAG), c) on its own
    train examples, so its model depends on nothing else; there is no aggregation.

    Args:
      model: the federated run's model.
      federation: its data, leaves [num_clients, n, ...].
      client_optimizer: the federated run's client optimizer.
      local: the run's local config (batch size, steps per round).
      rounds: the federated run's rounds.
      cohort_size: its clients per round (None: full participation); each client
        runs `local_steps_per_client` steps.
      policy: the run's module policy (federated and local leaves are trained).
      seed: the run's seed (the same init as `loop.run`).
      chunk_size: clients vmapped at once.

    Returns:
      The init, each client's trained leaves, their test predictions and report.
    """
    num_clients = federation.num_clients
    steps = local_steps_per_client(
        num_clients, local, rounds=rounds, cohort_size=cohort_size or num_clients
    )
    resolved = _owned(_resolve(model, policy))
    train = _trainer(model, resolved, client_optimizer, local, steps)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(_key(seed), jnp.arange(num_clients))

    @jax.jit
    def train_all(params, data, keys):
        return jax.lax.map(lambda x: train(params, *x), (data, keys), batch_size=chunk_size)

    params = _init(model, seed)
    client_params = train_all(params, federation.train, keys)
    predictions = report_lib.predict(
        model, params, federation.test, policy=resolved, client_states=client_params
    )
    return BaselineResult(
        params, client_params, predictions, report_lib.score(model, predictions, federation.test)
    )


def steps_summary(
    federation: federation_lib.Federation,
    local: local_training.LocalTrainingConfig,
    *,
    rounds: int,
    cohort_size: int,
) -> str:
    """One line with the example-step budget of each view (for logs)."""
    total = federated_example_steps(federation, local, rounds=rounds, cohort_size=cohort_size)
    n = int(federation.num_examples("train").sum())
    batch = n if local.batch_size is None else min(local.batch_size, n)
    steps = centralised_steps(total, n, local.batch_size)
    per_client = local_steps_per_client(
        federation.num_clients, local, rounds=rounds, cohort_size=cohort_size
    )
    return (
        f"example-steps: federated {total:.0f} = centralised {steps} "
        f"steps of {batch}; local-only {per_client} steps per client"
    )


class Comparison(NamedTuple):
    """A federated run next to its baselines, on the same test data.

    Attributes:
      reports: {view: Report}, views 'federated' (the global model), 'personalised'
        (only when the policy has local leaves), 'centralised', 'local-only'.
      predictions: {view: predictions on federation.test}, as `evaluation.predict`.
      groups: {grouping name: {view: equity.group_report(...)}}.
      text: the comparison and group tables, for printing.
    """

    reports: dict[str, report_lib.Report]
    predictions: dict[str, dict]
    groups: dict[str, dict[str, dict]]
    text: str


def compare(
    model: interface.Model,
    federation: federation_lib.Federation,
    result: "loop.SimulationResult",
    *,
    policy: policy_lib.ResolvedPolicy,
    client_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    rounds: int,
    cohort_size: int,
    seed: int = 0,
    groups: dict | None = None,
) -> Comparison:
    """Trains both baselines with the run's budget and tabulates every view.

    Args:
      model: the run's model.
      federation: the run's data.
      result: what `loop.run` returned.
      policy: the run's algorithm's policy (`algorithm.policy`).
      client_optimizer: the run's client optimizer.
      local: the run's local training config.
      rounds: the run's rounds.
      cohort_size: the run's clients per round.
      seed: the run's seed.
      groups: {name: per-client [num_clients] or per-example [num_clients, n_test]
        group labels} to report per group (e.g. {'sector': Federation.groups}).

    Returns:
      The reports, predictions, group reports and their text.
    """
    common = dict(client_optimizer=client_optimizer, local=local, policy=policy, seed=seed)
    steps = federated_example_steps(federation, local, rounds=rounds, cohort_size=cohort_size)
    central = centralised(model, federation, example_steps=steps, **common)
    alone = local_only(model, federation, rounds=rounds, cohort_size=cohort_size, **common)
    test, params = federation.test, result.server_state.params
    predictions = {"federated": report_lib.predict(model, params, test)}
    if any(jax.tree.leaves(policy.local)):
        predictions["personalised"] = report_lib.predict(
            model, params, test, policy=policy, client_states=result.client_states
        )
    predictions.update({"centralised": central.predictions, "local-only": alone.predictions})
    reports = {view: report_lib.score(model, p, test) for view, p in predictions.items()}
    lines = [
        steps_summary(federation, local, rounds=rounds, cohort_size=cohort_size),
        equity.format_comparison(reports, model.spec),
    ]
    by_group = {}
    for name, labels in (groups or {}).items():
        by_group[name] = {
            view: equity.group_report(model, p, test, labels) for view, p in predictions.items()
        }
        lines.append(_format_gaps(name, by_group[name], model))
    return Comparison(reports, predictions, by_group, "\n".join(lines))


def _format_gaps(name: str, views: dict[str, dict], model: interface.Model) -> str:
    """Per view: each task's primary metric per group and the best-worst gap."""
    lines = [f"By {name}:"]
    for task in model.spec.tasks:
        metric = metrics_lib.PRIMARY[task.kind]
        for view, report in views.items():
            gap = equity.group_gap(report).get(task.name, {}).get(metric)
            scored = sorted(
                ((m[task.name][metric], g) for g, m in report.items() if task.name in m),
                key=lambda x: x[0],
            )
            if len(scored) > 8:  # E.g. chem97's 131 authorities: show the extremes.
                scored = scored[:3] + [(None, f"... {len(scored) - 6} more ...")] + scored[-3:]
            values = ", ".join(g if v is None else f"{g} {v:.4f}" for v, g in scored)
            tail = f"gap {gap['gap']:.4f} (worst {gap['worst']})" if gap else "gap -"
            lines.append(f"  {task.name}:{metric:<9} {view:<13} {tail}: {values}")
    return "\n".join(lines)

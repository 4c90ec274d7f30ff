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
"""Hierarchical federated learning with per-module schedules (HF-FM).

Clients train; each group (an edge server, a local authority) averages its
clients' models; higher levels (regions, the cloud) average their children's
models every few rounds and send the result back down. Which level averages
which module, and how often, is a per-module `Schedule`: HF-FM
(Abdisarabshali et al. 2025, arXiv:2509.03695; code payamsiabd/M3T-FFM,
methods/main_hierarchy.py) averages adapters and heads at the edge every round
and at the cloud every `gaf` rounds (`hffm_schedule(cloud_every=gaf)`);
`edge_modules` stay at the group for good (group-personalised modules).

Round r (1-based: state.round + 1). For a federated leaf with periods
(e_1, ..., e_L) (level 1 = groups, L = the cloud; 0 = never), level l fires when
e_l > 0 and r % e_l == 0. A leaf is sent only when some level fires (its client
weight is 0 otherwise: nothing is communicated). Then, all groups at once:

  1. group step: x_g <- x_g - lr * mean_{c in g} delta_c (groups whose clients
     sent the leaf; lr = 1 is model averaging, as HF-FM);
  2. for each fired level l >= 2, upwards: x <- the weighted mean of the groups
     below each level-l node (`levels.level_mean`), broadcast back to every
     group below it; the weights are the groups' client weights summed since
     that level last fired (so a group that missed this round still counts
     what it trained since, and with full participation they are HF-FM's sample
     counts).

With every period 1 this is flat FedAvg over all clients (the weighted mean of
the groups' weighted means); with one group, FedAvg.

State (decided here): the group copies x_g, leaves [num_groups, ...], and the
weights since each level fired live in `ServerState.agg_state` (HierarchyState;
the grouped aggregator passes it through). `ServerState.params` holds the
cloud's model: its federated leaves change only when the cloud fires, and a
module never averaged at the cloud keeps its initial value there. Each client
receives its group's copy (the per-client `broadcast`); `group_views` and
`evaluate_groups` give every client's view for evaluation.

Differences from the HF-FM code (methods/main_hierarchy.py): there, the cloud's
accumulators add the cluster's running sums after every user and task (lines
197-204), so early users of a cluster count several times; here each client
counts once, with its weight. HF-FM also accumulates a user's adapters after
each task's training (twice per user); here a client sends one delta per
round. The server step is SGD on the mean delta at the groups (lr 1: averaging);
other server optimizers are not applied per group.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fedjax_m3t import evaluation, tree
from fedjax_m3t import policy as policy_lib
from fedjax_m3t import typing as t
from fedjax_m3t.algorithms import base, fed_opt, local_training
from fedjax_m3t.hierarchy import grouped, levels
from fedjax_m3t.models import interface


@dataclasses.dataclass(frozen=True, kw_only=True)
class Schedule:
    """Per-module aggregation periods, one per level (groups first, the cloud last).

    Attributes:
      every: periods of the leaves no rule matches, e.g. (1, 2): groups every
        round, the cloud every 2 rounds; 0 = never at that level.
      rules: (glob pattern, periods) pairs; the first pattern that matches a leaf's
        path wins (fedjax_m3t.tree globs).

    >>> schedule = Schedule(every=(1, 8), rules=(('adapters/**', (1, 0)),))
    """

    every: tuple[int, ...] = (1, 1)
    rules: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "every", tuple(int(e) for e in self.every))
        rules = tuple((p, tuple(int(e) for e in ev)) for p, ev in self.rules)
        object.__setattr__(self, "rules", rules)
        for periods in (self.every, *(ev for _, ev in rules)):
            if len(periods) != len(self.every) or min(periods) < 0:
                raise ValueError(
                    f"Every schedule needs one period >= 0 per level ({len(self.every)}), "
                    f"got {periods}."
                )

    def resolve(self, params: t.Params) -> t.PyTree:
        """Per leaf, its periods (a pytree of tuples; static).

        Raises:
          ValueError: if a rule's pattern matches no parameter.
        """
        for pattern, _ in self.rules:
            tree.make_mask(params, pattern)  # Raises, naming the modules, if unmatched.

        def periods(path, _):
            for pattern, every in self.rules:
                if tree.path_matches(pattern, path):
                    return every
            return self.every

        return tree.map_with_paths(periods, params)


def hffm_schedule(
    cloud_every: int, edge_modules: tuple[str, ...] = (), edge_every: int = 1, num_levels: int = 2
) -> Schedule:
    """HF-FM's schedule: groups every `edge_every` rounds, the cloud every `cloud_every`.

    Middle levels of deeper trees (num_levels > 2) fire with the cloud.
    `edge_modules` (globs) never go above the groups. cloud_every = 1 and one
    group is the star (FedAvg); cloud_every = 0 is edge-only.
    """
    middle = (cloud_every,) * (num_levels - 2)
    every = (edge_every, *middle, cloud_every)
    edge = (edge_every,) + (0,) * (num_levels - 1)
    return Schedule(every=every, rules=tuple((p, edge) for p in edge_modules))


class HierarchyState(NamedTuple):
    """The groups' copies, kept in ServerState.agg_state.

    Attributes:
      group_params: federated leaves [num_groups, ...] (None elsewhere): the model
        each group's clients receive.
      since: per level 2..L, per federated leaf float32 [num_groups]: the groups'
        client weights summed since that level last fired for the leaf.
    """

    group_params: t.PyTree
    since: tuple


def _fires(periods: tuple[int, ...], round_num: jax.Array) -> list[jax.Array | None]:
    """Per level, whether it fires this round (None: never, statically)."""
    return [None if e == 0 else (round_num % e) == 0 for e in periods]


def _any(flags: list) -> jax.Array:
    live = [f for f in flags if f is not None]
    return jnp.any(jnp.stack(live)) if live else jnp.zeros((), bool)


def hierarchical(
    model: interface.Model,
    *,
    tree_: levels.Tree,
    schedule: Schedule,
    client_optimizer: optax.GradientTransformation,
    local: local_training.LocalTrainingConfig,
    policy: policy_lib.ModulePolicy | None = None,
    learning_rate: float = 1.0,
    client_transform: fed_opt.ClientTransform | None = None,
    loss: fed_opt.LossFactory | None = None,
) -> base.FederatedAlgorithm:
    """Builds hierarchical FedAvg over `tree_` with per-module `schedule`.

    >>> import optax
    >>> from fedjax_m3t.models import linear
    >>> from fedjax_m3t.data import spec
    >>> model = linear.build_linear_model(spec.DataSpec(
    ...     modalities=('tabular',), tasks=(spec.TaskSpec(name='y', kind='regression'),)))
    >>> algorithm = hierarchical(model, tree_=levels.Tree(num_groups=3),
    ...     schedule=hffm_schedule(cloud_every=2), client_optimizer=optax.sgd(0.1),
    ...     local=local_training.LocalTrainingConfig())

    Args:
      model: the model.
      tree_: the levels above the clients (levels.from_federation for the data's groups).
      schedule: per-module periods, one per level of `tree_`.
      client_optimizer: the local optimizer.
      local: local training hyperparameters.
      policy: federated / local / frozen modules (local ones never leave the
        client; frozen ones are never trained).
      learning_rate: the groups' step on their mean delta (1: model averaging).
      client_transform, loss: as in fed_opt.fed_opt.

    Returns:
      The algorithm (its aggregator is grouped.aggregator(tree_.num_groups)).

    Raises:
      ValueError: for a schedule with the wrong number of levels or a bad pattern.
    """
    if len(schedule.every) != tree_.num_levels:
        raise ValueError(
            f"The schedule has {len(schedule.every)} periods per module but the tree has "
            f"{tree_.num_levels} levels above the clients."
        )
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    resolved = policy_lib.require_trainable(
        policy_lib.resolve(policy or policy_lib.ModulePolicy(), shapes)
    )
    periods = tree.select(resolved.federated, schedule.resolve(shapes))
    is_periods = lambda x: isinstance(x, tuple)
    ancestors = [jnp.asarray(tree_.ancestors(lv)) for lv in range(1, tree_.num_levels + 1)]
    G = tree_.num_groups

    def broadcast(state, context):
        group = lambda x: jnp.take(x, context.group, axis=0, mode="clip")
        mine = jax.tree.map(group, state.agg_state.group_params)
        return tree.merge(resolved.federated, mine, state.params)

    inner = fed_opt.fed_opt(
        model,
        client_optimizer=client_optimizer,
        server_optimizer=optax.sgd(learning_rate),
        local=local,
        policy=policy,
        aggregator=grouped.aggregator(G),
        client_transform=client_transform,
        loss=loss,
        broadcast=broadcast,
    )

    def client_update(received, client_state, examples, context):
        out = inner.client_update(received, client_state, examples, context)
        now = context.round + 1
        sent = jax.tree.map(lambda p: _any(_fires(p, now)), periods, is_leaf=is_periods)
        keep = lambda s, x: jnp.where(s, x, jnp.zeros_like(x))
        return out._replace(
            delta=jax.tree.map(keep, sent, out.delta), weight=jax.tree.map(keep, sent, out.weight)
        )

    def init(params):
        shared = tree.select(resolved.federated, params)
        copies = jax.tree.map(lambda x: jnp.broadcast_to(x, (G,) + x.shape), shared)
        since = tuple(
            jax.tree.map(lambda _: jnp.zeros((G,), jnp.float32), shared)
            for _ in range(tree_.num_levels - 1)
        )
        return base.ServerState(
            params=params,
            opt_state=(),
            agg_state=HierarchyState(group_params=copies, since=since),
            round=jnp.zeros((), jnp.int32),
        )

    def leaf_step(p, x, cloud, delta, weight, since, round_num):
        """One leaf: the group step, then each fired level upwards."""
        fires = _fires(p, round_num)
        trained = _expand(weight > 0, x)
        x = jnp.where(trained, x - learning_rate * delta.astype(x.dtype), x)
        since = [s + weight for s in since]
        for lv in range(2, tree_.num_levels + 1):
            if fires[lv - 1] is None:
                continue
            anc = ancestors[lv - 1]
            mean, total = levels.level_mean(x, since[lv - 2], anc, tree_.num_nodes(lv))
            moved = jnp.where(_expand(total[anc] > 0, x), mean[anc].astype(x.dtype), x)
            x = jnp.where(fires[lv - 1], moved, x)
            since = [jnp.where(fires[lv - 1] & (k <= lv), 0.0, s) for k, s in enumerate(since, 2)]
            if lv == tree_.num_levels:
                cloud = jnp.where(fires[lv - 1] & (total[0] > 0), mean[0].astype(x.dtype), cloud)
        return x, cloud, since

    def server_apply(state, aggregate, rng):
        del rng  # Unused: deterministic.
        round_num = state.round + 1
        hs = state.agg_state
        flat_p, struct = jax.tree.flatten(periods, is_leaf=is_periods)
        leaves = lambda t_: struct.flatten_up_to(t_)
        cloud = tree.select(resolved.federated, state.params)
        per_level = [leaves(s) for s in hs.since]
        outs = [
            leaf_step(p, x, c, d, w, [s[i] for s in per_level], round_num)
            for i, (p, x, c, d, w) in enumerate(
                zip(
                    flat_p,
                    leaves(hs.group_params),
                    leaves(cloud),
                    leaves(aggregate.delta),
                    leaves(aggregate.weight),
                    strict=True,
                )
            )
        ]
        unflat = lambda xs: jax.tree.unflatten(struct, xs)
        group_params = unflat([o[0] for o in outs])
        new_cloud = unflat([o[1] for o in outs])
        since = tuple(unflat([o[2][k] for o in outs]) for k in range(tree_.num_levels - 1))
        params = tree.merge(resolved.federated, new_cloud, state.params)
        cloud_fired = [_fires(p, round_num)[-1] for p in flat_p]
        active = [w > 0 for w in leaves(aggregate.weight)]
        metrics = {
            "update_norm": tree.l2_norm(aggregate.delta),
            "cloud_round": _any(cloud_fired).astype(jnp.float32),
            # Groups some client of which sent a leaf this round.
            "groups_trained": jnp.sum(_any_rows(active, G)).astype(jnp.float32),
        }
        new = state._replace(
            params=params, agg_state=HierarchyState(group_params, since), round=round_num
        )
        return new, metrics

    return inner._replace(init=init, client_update=client_update, server_apply=server_apply)


def _expand(w: jax.Array, like: jax.Array) -> jax.Array:
    return w.reshape(w.shape + (1,) * (like.ndim - w.ndim))


def _any_rows(flags: list[jax.Array], num_groups: int) -> jax.Array:
    """bool [num_groups]: any of the per-leaf [num_groups] flags."""
    if not flags:
        return jnp.zeros((num_groups,), bool)
    return jnp.any(jnp.stack(flags), axis=0)


def sent_bytes(
    params: t.Params,
    policy: policy_lib.ModulePolicy | None,
    schedule: Schedule,
    rounds: int,
) -> np.ndarray:
    """Bytes each node sends its parent per round under the schedule: [rounds, levels].

    Column 0: each client to its group (the federated leaves some level averages
    that round); column l >= 1: each level-l node to its parent (the leaves level
    l + 1 averages). Local and frozen modules are never sent; downlinks are not
    counted (HF-FM's network model counts uplinks only).

    Args:
      params: the params (arrays or ShapeDtypeStructs).
      policy: the module policy (None: all federated).
      schedule: the per-module periods.
      rounds: rounds 1..rounds.
    """
    resolved = policy_lib.resolve(policy or policy_lib.ModulePolicy(), params)
    is_periods = lambda x: isinstance(x, tuple)
    periods = jax.tree.leaves(
        tree.select(resolved.federated, schedule.resolve(params)), is_leaf=is_periods
    )
    sizes = [
        x.size * x.dtype.itemsize for x in jax.tree.leaves(tree.select(resolved.federated, params))
    ]
    out = np.zeros((rounds, len(schedule.every)))
    for r in range(1, rounds + 1):
        for p, size in zip(periods, sizes, strict=True):
            fires = [e > 0 and r % e == 0 for e in p]
            out[r - 1, 0] += size * any(fires)
            for lv in range(1, len(p)):
                out[r - 1, lv] += size * fires[lv]
    return out


def group_views(
    algorithm: base.FederatedAlgorithm, state: base.ServerState, group_ids: jax.typing.ArrayLike
) -> t.PyTree:
    """Each client's group copy of the federated leaves, leaves [num_clients, ...].

    Args:
      algorithm: a `hierarchical` algorithm.
      state: its server state.
      group_ids: int32 [num_clients] (Federation.group_ids()).
    """
    ids = jnp.asarray(group_ids, jnp.int32)
    return jax.tree.map(lambda x: jnp.take(x, ids, axis=0), state.agg_state.group_params)


def predict_groups(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    state: base.ServerState,
    data: dict,
    group_ids: jax.typing.ArrayLike,
    client_states: t.PyTree = None,
) -> dict:
    """Predictions of every client's view: its group's copy (and its local leaves).

    Args:
      algorithm, model, state: the hierarchical run.
      data: per-client examples, leaves [num_clients, n, ...] (Federation.test).
      group_ids: int32 [num_clients].
      client_states: local leaves [num_clients, ...], or None when none are local.

    Returns:
      {task: [num_clients, n] or [num_clients, n, K]}, as evaluation.predict.
    """
    policy = algorithm.policy
    views = {"group": group_views(algorithm, state, group_ids), "local": client_states}

    def personalize(params, view):
        params = tree.merge(policy.federated, view["group"], params)
        if view["local"] is None or not jax.tree.leaves(view["local"]):
            return params
        return tree.merge(policy.local, view["local"], params)

    return evaluation.Evaluator(model, personalize).predict(state.params, data, views)


def evaluate_groups(
    algorithm: base.FederatedAlgorithm,
    model: interface.Model,
    state: base.ServerState,
    data: dict,
    group_ids: jax.typing.ArrayLike,
    client_states: t.PyTree = None,
) -> evaluation.Report:
    """Test metrics of every client's view (see predict_groups)."""
    predictions = predict_groups(algorithm, model, state, data, group_ids, client_states)
    return evaluation.score(model, predictions, data)

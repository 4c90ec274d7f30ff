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
"""A different aggregation rule per module, chosen by glob patterns over parameter paths.

`by_module(((pattern, aggregator), ...), default)` routes each federated leaf to
the first rule whose glob (the globs of fedjax_m3t.tree / policy.ModulePolicy:
'heads/**', 'encoders/image', ...) selects its path, and the others to
`default`. Each rule sees only its leaves (None elsewhere), with its own state
and its own key (fold_in of the round's aggregator key with the rule's index).
The result is a stacked-mode rule: streaming members run through
`base.as_stacked` on the cohort's rows.

>>> from fedjax_m3t.aggregation import coordinate_median, trimmed_mean
>>> rule = by_module((('heads/**', coordinate_median.AGGREGATOR),),
...                  default=trimmed_mean.aggregator(trim=1))
"""

from collections.abc import Sequence

import jax

from fedjax_m3t import tree
from fedjax_m3t import typing as t
from fedjax_m3t.aggregation import base, selective

Rules = Sequence[tuple[str, base.Aggregator]]


def _route(rules: Rules, template: t.PyTree) -> list:
    """Per rule (then the default), a mask of the leaves it aggregates."""
    for pattern, _ in rules:
        tree.make_mask(template, pattern)  # Raises, naming a pattern that matches nothing.

    def owner(path, _):
        matches = [i for i, (p, _) in enumerate(rules) if tree.path_matches(p, path)]
        return matches[0] if matches else len(rules)

    owners = tree.map_with_paths(owner, template)
    return [jax.tree.map(lambda o, i=i: o == i, owners) for i in range(len(rules) + 1)]


def by_module(rules: Rules, default: base.Aggregator = selective.AGGREGATOR) -> base.Aggregator:
    """One stacked Aggregator applying `rules` (first match wins) and `default` elsewhere.

    Args:
      rules: (glob pattern, aggregator) pairs.
      default: the rule of leaves no pattern selects.

    Returns:
      A stacked-mode Aggregator whose state is a tuple of the members' states.

    Raises:
      ValueError: from init_state, naming a pattern that matches no federated leaf.
    """
    members = [base.as_stacked(a) for _, a in rules] + [base.as_stacked(default)]

    def init_state(template):
        masks = _route(rules, template)
        pairs = zip(members, masks, strict=True)
        return tuple(a.init_state(tree.select(m, template)) for a, m in pairs)

    def finalize(updates: base.StackedUpdates, agg_state: tuple, rng: t.PRNGKey):
        masks = _route(rules, jax.tree.map(lambda x: x[0], updates.delta))
        delta, weight, states = updates.delta, updates.weight, []
        for i, (member, mask, state) in enumerate(zip(members, masks, agg_state, strict=True)):
            if not any(jax.tree.leaves(mask)):
                states.append(state)
                continue
            part = base.StackedUpdates(
                tree.select(mask, updates.delta),
                tree.select(mask, updates.weight),
                updates.client_id,
            )
            out, state = member.finalize(part, state, jax.random.fold_in(rng, i))
            delta, weight = tree.merge(mask, out.delta, delta), tree.merge(mask, out.weight, weight)
            states.append(state)
        return base.Aggregate(delta=delta, weight=weight), tuple(states)

    return base.stacked_aggregator(finalize, init_state)

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
"""Aggregators from short spec strings, for flags and the algorithm registry.

Grammar (spaces are ignored):

    spec    := rule | routes
    rule    := name | name '(' key '=' number (',' key '=' number)* ')'
    routes  := glob ':' rule (';' glob ':' rule)* [';' rule]

A lone rule applies to every federated leaf; `routes` pick a rule per module by
glob (aggregation/per_module.py, first match wins) and end with an optional bare
rule for the remaining leaves (default 'mean'). Examples:

    'median'
    'trimmed_mean(trim=2)'
    'multi_krum(f=2, m=4)'            multi-Krum, Blanchard et al.'s n - f - 2
    'krum(f=1, neighbours=1)'         the n - f - 1 convention
    'norm_bound(bound=0.5)'
    'heads/**: median; encoders/**: geometric_median(num_steps=4); trimmed_mean(trim=1)'

Rules and their parameters (defaults in brackets):
  mean                                   selective weighted mean (streaming)
  median                                 coordinate-wise median
  trimmed_mean(trim [1])                 values dropped per side, per coordinate
  norm_bound(bound [1.0])                clip each client's update, then mean (streaming)
  krum(f [1], neighbours [2])            neighbours=2: q = n - f - 2, 1: q = n - f - 1
  multi_krum(f [1], m [2], neighbours [2])
  geometric_median(num_steps [8], nu [1e-6])
"""

import re

from fedjax_m3t.aggregation import (
    base,
    coordinate_median,
    geometric_median,
    krum,
    norm_bound,
    per_module,
    selective,
    trimmed_mean,
)


def _krum(f: int = 1, m: int = 1, neighbours: int = 2) -> base.Aggregator:
    if neighbours not in (1, 2):
        raise ValueError(f"krum's neighbours must be 2 (n-f-2) or 1 (n-f-1), got {neighbours}.")
    return krum.aggregator(f=f, m=m, neighbours=f"n-f-{neighbours}")


FACTORIES = {
    "mean": lambda: selective.AGGREGATOR,
    "median": lambda: coordinate_median.AGGREGATOR,
    "trimmed_mean": lambda trim=1: trimmed_mean.aggregator(trim=int(trim)),
    "norm_bound": lambda bound=1.0: norm_bound.aggregator(bound=float(bound)),
    "krum": lambda f=1, neighbours=2: _krum(int(f), 1, int(neighbours)),
    "multi_krum": lambda f=1, m=2, neighbours=2: _krum(int(f), int(m), int(neighbours)),
    "geometric_median": lambda num_steps=8, nu=1e-6: geometric_median.aggregator(
        num_steps=int(num_steps), nu=float(nu)
    ),
}
"""Rule name -> factory of keyword numbers (see the module docstring)."""

_RULE = re.compile(r"^([a-z_]+)(?:\((.*)\))?$")


def rule(text: str) -> base.Aggregator:
    """One rule, e.g. 'krum(f=2)' (see the module docstring).

    Raises:
      ValueError: for an unknown name or parameter, or a malformed spec.
    """
    text = text.replace(" ", "")
    match = _RULE.match(text)
    if not match or match.group(1) not in FACTORIES:
        raise ValueError(
            f"Unknown aggregator {text!r}; choose one of {tuple(FACTORIES)}, e.g. "
            "'trimmed_mean(trim=1)' or 'heads/**:median;mean'."
        )
    kwargs = {}
    for item in filter(None, (match.group(2) or "").split(",")):
        key, _, value = item.partition("=")
        try:
            kwargs[key] = float(value)
        except ValueError:
            raise ValueError(f"In aggregator {text!r}: {item!r} is not key=number.") from None
    try:
        return FACTORIES[match.group(1)](**kwargs)
    except TypeError:
        raise ValueError(f"In aggregator {text!r}: unknown parameter in {sorted(kwargs)}.") from (
            None
        )


def build(spec: str) -> base.Aggregator:
    """The Aggregator a spec string names (see the module docstring).

    >>> build('heads/**: median; trimmed_mean(trim=1)').stacked
    True

    Raises:
      ValueError: for an unknown rule or parameter; a glob that matches no leaf
        raises when the algorithm's state is initialised.
    """
    parts = [p.strip() for p in spec.split(";") if p.strip()]
    routed = [p for p in parts if ":" in p]
    if not routed:
        if len(parts) != 1:
            raise ValueError(f"Aggregator spec {spec!r}: several rules need 'glob:' prefixes.")
        return rule(parts[0])
    bare = [p for p in parts if ":" not in p]
    if len(bare) > 1 or (bare and parts[-1] != bare[0]):
        raise ValueError(f"Aggregator spec {spec!r}: only the last rule may lack a 'glob:'.")
    rules = []
    for part in routed:
        pattern, _, text = part.partition(":")
        rules.append((pattern.strip(), rule(text)))
    default = rule(bare[0]) if bare else selective.AGGREGATOR
    return per_module.by_module(rules, default)

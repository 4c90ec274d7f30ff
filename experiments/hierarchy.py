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
r"""Flat FedAvg vs edge-only vs hierarchical (HF-FM) aggregation, with network costs.

  python -m experiments.hierarchy --datasets=synthetic,chem97 --rounds=40

For each dataset: flat FedAvg (the star), edge-only (groups never meet at the
cloud), and hierarchical with the cloud every 2 and 8 rounds (HF-FM's E_Agg),
the groups every round. Prints, for the view each institution uses (the global
model for FedAvg, its group's model otherwise): the pooled test metric, its
mean and worst over institutions (with >= 5 test labels) and over groups, the
bytes each client and each group sends per round, and the latency and energy
per round of HF-FM's network model (40 users in 10 edge clusters,
fedjax_m3t.hierarchy.network) with this model's payload.

Also (issue 16 items 4-5): flat FedAvg with 8-bit stochastic quantisation of
the uploads (flat_q8; hier_2_q8 for the hierarchy) and top-k with error feedback
(flat_topk), q-FFL (qffl) and AFL (afl); every row prints Jain's index of the
institutions' metric and the bytes each client uploads per round (what the codec
sends) and in total over the run's cohorts.

Groups: chem97's local education authorities; on the synthetic federation the
institutions are grouped by the modalities they hold (one group per mix).
"""

import dataclasses

import jax
import numpy as np
from absl import app, flags

from fedjax_m3t import evaluation, simulation, tree
from fedjax_m3t.aggregation import compression
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.datasets import multilevel, synthetic
from fedjax_m3t.evaluation import equity
from fedjax_m3t.hierarchy import hierarchical, levels, network
from fedjax_m3t.models import m3t

flags.DEFINE_list("datasets", ["synthetic", "chem97"], "synthetic and/or chem97.")
flags.DEFINE_list(
    "methods",
    ["flat", "edge_only", "hier_2", "hier_8", "flat_q8", "hier_2_q8", "flat_topk", "qffl", "afl"],
    "Methods to run.",
)
flags.DEFINE_integer("top_k", 64, "flat_topk: entries sent per leaf.")
flags.DEFINE_float("qffl_q", 1.0, "qffl: q.")
flags.DEFINE_float("afl_lr", 0.1, "afl: the mixture's step size.")
flags.DEFINE_integer("rounds", 40, "Rounds per method.")
flags.DEFINE_integer("cohort_size", 256, "Clients per round (capped at the federation).")
flags.DEFINE_integer("num_clients", 48, "Synthetic institutions.")
flags.DEFINE_integer("width", 16, "M3T width.")
flags.DEFINE_integer("depth", 1, "M3T backbone layers.")
flags.DEFINE_integer("local_steps", 5, "Local Adam steps per round.")
flags.DEFINE_float("client_lr", 3e-3, "Local learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of data, init and rounds.")
FLAGS = flags.FLAGS

HEADLINE = {"regression": "r2", "binary": "auc", "multiclass": "accuracy"}
CLOUD_EVERY = {"flat": 1, "edge_only": 0, "hier_2": 2, "hier_8": 8}
QUANT_BITS = 8


def codec(method: str) -> str:
    """The upload codec of a method name: 'quantize' (_q8), 'top_k' (_topk) or 'none'."""
    return "quantize" if method.endswith("_q8") else "top_k" if method.endswith("_topk") else "none"


def with_transform(algorithm, transform):
    """`algorithm` whose clients apply `transform` to their output (any algorithm)."""
    inner = algorithm.client_update

    def client_update(received, client_state, examples, context):
        out = inner(received, client_state, examples, context)
        key = jax.random.fold_in(context.rng, local_training.TRANSFORM_TAG)
        return transform(out, key)

    return algorithm._replace(client_update=client_update)


def modality_groups(federation):
    """The federation with each institution grouped by the modalities it holds."""
    cover = federation.modality_coverage()
    names = [
        "+".join(m for m in federation.spec.modalities if cover[m][c] > 0) or "none"
        for c in range(federation.num_clients)
    ]
    return dataclasses.replace(federation, groups=tuple(names))


def load(name: str, seed: int):
    if name == "synthetic":
        config = synthetic.SyntheticConfig(
            num_clients=FLAGS.num_clients, mean_examples=96, modality_missing_prob=0.4, seed=seed
        )
        return modality_groups(synthetic.make_education_federation(config))
    return multilevel.load(name, seed=seed, standardize_targets=True, verbose=False).federation


def build(method: str, model, federation):
    """(algorithm, hierarchical schedule or None for the star) of a method name."""
    algorithm, schedule = _build(
        method.removesuffix("_q8").removesuffix("_topk"), model, federation
    )
    if codec(method) == "quantize":
        algorithm = with_transform(algorithm, compression.stochastic_quantize(QUANT_BITS))
    elif codec(method) == "top_k":
        algorithm = compression.top_k(algorithm, FLAGS.top_k)
    return algorithm, schedule


def _build(method: str, model, federation):
    local = local_training.LocalTrainingConfig(local_steps=FLAGS.local_steps, batch_size=32)
    common = dict(local=local, client_learning_rate=FLAGS.client_lr, client_optimizer_name="adam")
    if method == "flat":
        return registry.build_algorithm("fedavg", model, **common), None
    if method == "qffl":
        return registry.build_algorithm("qffl", model, qffl_q=FLAGS.qffl_q, **common), None
    if method == "afl":
        n = federation.num_clients
        return registry.build_algorithm(
            "afl", model, afl_lr=FLAGS.afl_lr, num_clients=n, **common
        ), None
    schedule = hierarchical.hffm_schedule(cloud_every=CLOUD_EVERY[method])
    tree_ = levels.from_federation(federation)
    algorithm = registry.build_algorithm(
        "hierarchical", model, tree=tree_, schedule=schedule, **common
    )
    return algorithm, schedule


def costs(method, schedule, params, rounds, ratio=1.0):
    """(client bytes / round, group bytes / round, latency s, energy J) on HF-FM's network.

    `ratio`: compressed / raw upload bytes of a client (the codec's; the groups'
    and the cloud's messages are not compressed).
    """
    deployment, links = network.hffm_network()
    scenario = network.Scenario()
    if schedule is None:  # The star: every client sends the whole model to the cloud.
        size = tree.num_bytes(params) * ratio
        return size, 0.0, *network.star(links, scenario, network.payload_kbit(size))
    sent = hierarchical.sent_bytes(params, None, schedule, rounds).astype(np.float64)
    sent[:, 0] *= ratio
    kbit = np.vectorize(network.payload_kbit)(sent)
    lat, energy = network.timeline(deployment, links, scenario, kbit[:, 0], kbit[:, 1])
    return sent[:, 0].mean(), sent[:, 1].mean(), lat, energy


def run_one(name, method, federation, model):
    algorithm, schedule = build(method, model, federation)
    cohort = min(FLAGS.cohort_size, federation.num_clients)
    config = simulation.SimulationConfig(
        rounds=FLAGS.rounds, cohort_size=cohort, seed=FLAGS.seed, eval_every=0, verbose=False
    )
    result = simulation.run(algorithm, model, federation, config)
    if schedule is None:
        predictions = evaluation.predict(model, result.server_state.params, federation.test)
    else:
        predictions = hierarchical.predict_groups(
            algorithm, model, result.server_state, federation.test, federation.group_ids()
        )
    report = evaluation.score(model, predictions, federation.test)
    by_group = equity.group_report(model, predictions, federation.test, federation.groups)
    params = jax.eval_shape(model.init, jax.random.key(0))
    row = {"dataset": name, "method": method}
    up = compression.round_bytes(
        algorithm.policy, params, compression=codec(method), bits=QUANT_BITS, k=FLAGS.top_k
    )
    raw_up = compression.round_bytes(algorithm.policy, params)["up"]
    ratio = sum(up["up"].values()) / max(sum(raw_up.values()), 1)
    row["client_B"], row["group_B"], row["latency_s"], row["energy_J"] = costs(
        method, schedule, params, FLAGS.rounds, ratio
    )
    row["up_total_MB"] = row["client_B"] * cohort * FLAGS.rounds / 1e6
    for task in model.spec.tasks:
        metric = HEADLINE[task.kind]
        spread = equity.client_spread(report, task.name, metric)
        groups = [g[task.name][metric] for g in by_group.values() if task.name in g]
        groups = [v for v in groups if np.isfinite(v)]
        row[f"{task.name}:{metric}"] = report.pooled[task.name][metric]
        row[f"{task.name}:mean"] = spread["mean"]
        row[f"{task.name}:worst_inst"] = spread["worst"]
        row[f"{task.name}:jain"] = spread["jain"]
        row[f"{task.name}:worst_group"] = min(groups) if groups else float("nan")
    return row


def format_rows(rows) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = [" | ".join(keys)]
    for r in rows:
        cell = lambda v: f"{v:.4g}" if isinstance(v, float | np.floating) else str(v)
        lines.append(" | ".join(cell(r.get(k, "")) for k in keys))
    return "\n".join(lines)


def main(argv):
    del argv  # Unused.
    for name in FLAGS.datasets:
        federation = load(name, FLAGS.seed)
        print(
            f"{name}: {federation.num_clients} institutions in {len(set(federation.groups))} groups"
        )
        model = m3t.build_m3t_model(
            federation.spec,
            m3t.M3TConfig(width=FLAGS.width, depth=FLAGS.depth, num_heads=2, lora_rank=2),
        )
        rows = [run_one(name, method, federation, model) for method in FLAGS.methods]
        print(format_rows(rows), flush=True)


if __name__ == "__main__":
    app.run(main)

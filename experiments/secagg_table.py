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
r"""The secure aggregation table: bytes, expansion, quantisation error, time per round.

  python -m experiments.secagg_table                       # complete graph (SecAgg)
  python -m experiments.secagg_table --graph=harary --degree=4   # SecAgg+

For each dropout setting (0, one client, 30% of the cohort), FedAvg on the
synthetic education federation with the small M3T model, every client each
round, aggregated by simulated secure aggregation (fedjax_m3t/secure). Prints per
setting:

  * bytes per client per round from the byte model (fedjax_m3t/secure/byte_model.py:
    keys, shares and the masked vector; 256-bit keys and shares) and the expansion
    over the plain float32 upload of the same deltas;
  * the quantisation error: the largest |params| difference after one round from
    the same state between the secure round and the plain selective mean over the
    same survivors (server lr 1, so it is the aggregate's error), next to the bound
    2^-(f+1);
  * wall time per round (steady state, after compilation) of the secure and of the
    plain round, on this machine.

The paper's two settings (Bonawitz et al. 2017: 1.73x and 1.98x) are printed first,
from the same byte model. Everything is simulated in one process (no network).
"""

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from fedjax_m3t import tree
from fedjax_m3t.algorithms import fed_opt, local_training
from fedjax_m3t.datasets import synthetic
from fedjax_m3t.models import m3t
from fedjax_m3t.secure import aggregator as secagg
from fedjax_m3t.secure import byte_model
from fedjax_m3t.simulation import round as round_lib


def dropout_rate(setting: str, cohort_size: int) -> float:
    """'0.3' is a fraction of the cohort; an integer >= 1 ('1') is a number of clients."""
    value = float(setting.removeprefix("late:"))
    return value / cohort_size if value >= 1 else value


def parse_setting(setting: str, cohort_size: int) -> tuple[float, float]:
    """(early, late) dropout rates: '1', '0.3' drop before sending; 'late:1' after it."""
    rate = dropout_rate(setting, cohort_size)
    return (0.0, rate) if setting.startswith("late:") else (rate, 0.0)


def client_bytes(config: secagg.SecAggConfig, params, federated, cohort_size: int) -> dict:
    """The byte model of one client's round for the federated leaves of `params`."""
    leaves = jax.tree.leaves(tree.select(federated, params))
    values = sum(int(np.prod(x.shape)) for x in leaves)
    dim = values + len(leaves)  # Each leaf's weight is sent too.
    bits, precision = secagg.resolve_bits(config, cohort_size)
    neighbours = (
        cohort_size - 1 if config.graph == "complete" else min(config.degree, cohort_size - 1)
    )
    cost = byte_model.client_cost(neighbours, dim, bits)
    return {
        "bits": bits,
        "precision": precision,
        "bytes": cost.total_bytes,
        "masked_bytes": cost.masked / 8,
        "expansion": byte_model.expansion(cost, values, 32),
    }


def _timed(round_fn, state, states, train, key, rounds: int) -> tuple:
    out = round_fn(state, states, train, key)  # Compiles.
    jax.block_until_ready(out)
    start = time.perf_counter()
    for r in range(rounds):
        again = round_fn(state, states, train, jax.random.fold_in(key, r))
    jax.block_until_ready(again)
    return out, (time.perf_counter() - start) / rounds


def measure(
    settings: Sequence[str] = ("0", "1", "0.3"),
    *,
    num_clients: int = 10,
    graph: str = "complete",
    degree: int = 4,
    timed_rounds: int = 3,
    seed: int = 0,
    width: int = 32,
) -> list[dict]:
    """One row per dropout setting (see the module docstring)."""
    federation = synthetic.make_education_federation(
        synthetic.SyntheticConfig(num_clients=num_clients, mean_examples=32, seed=seed)
    )
    model = m3t.build_m3t_model(
        federation.spec, m3t.M3TConfig(width=width, depth=1, num_heads=4, lora_rank=0)
    )
    params = model.init(jax.random.key(seed))
    key = jax.random.key(seed + 1)

    def run(aggregator):
        algorithm = fed_opt.fed_opt(
            model,
            client_optimizer=optax.adam(3e-3),
            server_optimizer=optax.sgd(1.0),
            local=local_training.LocalTrainingConfig(local_steps=5, batch_size=32),
            aggregator=aggregator,
        )
        state = algorithm.init(params)
        one = algorithm.init_client_state(params)
        states = jax.tree.map(lambda x: jnp.stack([x] * num_clients), one)
        round_fn = round_lib.build_round(
            algorithm, num_clients=num_clients, cohort_size=num_clients
        )
        out, seconds = _timed(round_fn, state, states, federation.train, key, timed_rounds)
        return algorithm, out.server_state, seconds

    rows = []
    for setting in settings:
        early, late = parse_setting(setting, num_clients)
        config = secagg.SecAggConfig(graph=graph, degree=degree, dropout=early, late_dropout=late)
        algorithm, secure, secure_seconds = run(secagg.secure_aggregator(config))
        _, plain, plain_seconds = run(secagg.reference_aggregator(config))
        error = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(
                jax.tree.leaves(secure.params), jax.tree.leaves(plain.params), strict=True
            )
        )
        cost = client_bytes(config, params, algorithm.policy.federated, num_clients)
        rows.append(
            {
                "dropouts": int(secure.agg_state.dropped),
                "late": round(late * int(secure.agg_state.survivors)),
                "survivors": int(secure.agg_state.survivors),
                "aborted": bool(secure.agg_state.aborted),
                "clipped": int(secure.agg_state.clipped),
                "error": error,
                "bound": 2.0 ** -(cost["precision"] + 1),
                "secure_seconds": secure_seconds,
                "plain_seconds": plain_seconds,
                **cost,
            }
        )
    return rows


def format_rows(rows: list[dict], graph: str, num_clients: int) -> str:
    """The table as text."""
    paper = byte_model.paper_expansion(2**10, 2**20), byte_model.paper_expansion(2**14, 2**24)
    lines = [
        "Byte model, the paper's settings (Bonawitz et al. 2017; 16-bit inputs):",
        f"  2^10 clients, 2^20 values: {paper[0]:.3f}x (paper 1.73x)",
        f"  2^14 clients, 2^24 values: {paper[1]:.3f}x (paper 1.98x)",
        "",
        f"FedAvg, M3T (width 32), {num_clients} clients per round, graph={graph}:",
        f"{'dropouts':>8} {'late':>4} {'ring':>5} {'KB/client':>10} {'vector KB':>10} "
        f"{'expansion':>9} "
        f"{'max |err|':>10} {'bound':>9} {'clipped':>7} {'secure s':>9} {'plain s':>8}",
    ]
    for r in rows:
        status = " ABORTED" if r["aborted"] else ""
        lines.append(
            f"{r['dropouts']:>8} {r['late']:>4} {r['bits']:>5} {r['bytes'] / 1024:>10.1f} "
            f"{r['masked_bytes'] / 1024:>10.1f} {r['expansion']:>8.3f}x "
            f"{r['error']:>10.2e} {r['bound']:>9.2e} {r['clipped']:>7} "
            f"{r['secure_seconds']:>9.3f} {r['plain_seconds']:>8.3f}{status}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
    rows = measure(
        FLAGS.dropouts,
        num_clients=FLAGS.num_clients,
        graph=FLAGS.graph,
        degree=FLAGS.degree,
        timed_rounds=FLAGS.timed_rounds,
        seed=FLAGS.seed,
    )
    print(format_rows(rows, FLAGS.graph, FLAGS.num_clients))


if __name__ == "__main__":
    # Defined here, not at import: the flag names would clash with experiments.train's.
    flags.DEFINE_list(
        "dropouts",
        ["0", "1", "0.3", "late:1"],
        "Dropouts: a fraction, or a count (>= 1); 'late:' drops after sending.",
    )
    flags.DEFINE_integer("num_clients", 10, "Clients in the federation (all in every round).")
    flags.DEFINE_enum("graph", "complete", ["complete", "harary"], "Neighbour graph.")
    flags.DEFINE_integer("degree", 4, "--graph=harary: even degree.")
    flags.DEFINE_integer("timed_rounds", 3, "Rounds timed per setting, after compiling.")
    flags.DEFINE_integer("seed", 0, "Seed of data, init and rounds.")
    FLAGS = flags.FLAGS
    app.run(main)

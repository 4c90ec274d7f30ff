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
"""Tests for the selective (per-leaf weighted) mean of client deltas."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from jax.sharding import PartitionSpec as P

from fedjax_m3t.aggregation import selective
from fedjax_m3t.simulation import round as round_lib


def _cohort():
    """3 clients; 'shared' held by all, 'one' by client 1 only, 'none' by nobody.

    The weights are per leaf: 'shared/w' and 'shared/b' weigh the clients differently
    (like an encoder leaf weighted by the examples having its modality).
    """
    deltas = {
        "shared": {
            "w": jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
            "b": jnp.array([1.0, 2.0, 4.0]),
        },
        "one": jnp.array([[7.0], [-2.0], [9.0]]),
        "none": jnp.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]),
        "unshared": None,  # A non-federated leaf: no delta.
    }
    weights = {
        "shared": {"w": jnp.array([1.0, 2.0, 1.0]), "b": jnp.array([3.0, 0.0, 1.0])},
        "one": jnp.array([0.0, 5.0, 0.0]),
        "none": jnp.zeros(3),
        "unshared": None,
    }
    return deltas, weights


def _check_expected(test, agg):
    # shared/w: (1*[1, 2] + 2*[3, 4] + 1*[5, 6]) / 4 = [12, 16] / 4 = [3, 4].
    np.testing.assert_allclose(agg.delta["shared"]["w"], [3.0, 4.0], rtol=0, atol=1e-6)
    # shared/b: (3*1 + 0*2 + 1*4) / 4 = 7 / 4.
    np.testing.assert_allclose(agg.delta["shared"]["b"], 1.75, rtol=0, atol=1e-6)
    # one: held by client 1 only, so its delta exactly.
    np.testing.assert_array_equal(agg.delta["one"], [-2.0])
    # none: held by nobody: delta 0 and weight 0.
    np.testing.assert_array_equal(agg.delta["none"], [0.0, 0.0])
    # Total weights: shared/w 1 + 2 + 1, shared/b 3 + 0 + 1, one 5, none 0.
    test.assertEqual(
        jax.tree.map(float, agg.weight),
        {"shared": {"w": 4.0, "b": 4.0}, "one": 5.0, "none": 0.0, "unshared": None},
    )
    test.assertEqual(agg.weight["shared"]["w"].dtype, jnp.float32)
    test.assertEqual(agg.weight["shared"]["w"].shape, ())
    test.assertIsNone(agg.delta["unshared"])


class SelectiveMeanTest(absltest.TestCase):
    def test_one_shot_by_hand(self):
        _check_expected(self, selective.mean(*_cohort()))

    def test_streaming_in_chunks_equals_one_shot(self):
        deltas, weights = _cohort()
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), deltas)
        acc = selective.init(template)
        for part in (slice(0, 2), slice(2, 3)):  # Chunks of 2 then 1 client.
            cut = lambda x, part=part: x[part]
            acc = selective.accumulate(acc, jax.tree.map(cut, deltas), jax.tree.map(cut, weights))
        streamed, state = selective.finalize(acc, (), jax.random.key(0))
        self.assertEqual(state, ())
        _check_expected(self, streamed)
        one_shot = selective.mean(deltas, weights)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6), streamed, one_shot
        )

    def test_merge_of_partial_sums_equals_one_shot(self):
        # What the sharded round does: per-device partial sums, then a sum (psum).
        deltas, weights = _cohort()
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), deltas)
        parts = []
        for part in (slice(0, 1), slice(1, 3)):
            cut = lambda x, part=part: x[part]
            parts.append(
                selective.accumulate(
                    selective.init(template),
                    jax.tree.map(cut, deltas),
                    jax.tree.map(cut, weights),
                )
            )
        merged = jax.tree.map(jnp.add, *parts)
        _check_expected(self, selective.mean_of(merged))

    def test_zero_weight_padding_clients_change_nothing(self):
        deltas, weights = _cohort()
        # Two padding clients with weight 0 on every leaf and huge (finite) deltas.
        pad = lambda x, v: jnp.concatenate([x, jnp.full((2,) + x.shape[1:], v, x.dtype)])
        padded_deltas = jax.tree.map(lambda x: pad(x, 3e38), deltas)
        padded_weights = jax.tree.map(lambda w: pad(w, 0.0), weights)
        padded = selective.mean(padded_deltas, padded_weights)
        _check_expected(self, padded)
        jax.tree.map(
            lambda a, b: np.testing.assert_array_equal(a, b),
            padded,
            selective.mean(deltas, weights),
        )

    def test_merge_across_devices_is_a_psum(self):
        # The round's merge_across inside shard_map: 4 devices, one client each.
        deltas, weights = _cohort()
        pad = lambda x: jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)])
        deltas, weights = jax.tree.map(pad, deltas), jax.tree.map(pad, weights)
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), deltas)
        mesh = round_lib.make_client_mesh(4)

        def per_device(d, w):
            acc = selective.accumulate(selective.init(template), d, w)
            return selective.AGGREGATOR.merge_across(acc, round_lib.AXIS)

        merged = jax.jit(
            jax.shard_map(
                per_device,
                mesh=mesh,
                in_specs=(P(round_lib.AXIS), P(round_lib.AXIS)),
                out_specs=P(),
            )
        )(deltas, weights)
        _check_expected(self, selective.mean_of(merged))

    def test_bf16_deltas_sum_in_float32(self):
        # 1 + 4 * 2^-9 is not a bf16 number (8 bits of mantissa): summing bf16 deltas in
        # bf16 would round each partial sum; the float32 accumulator keeps it exactly.
        deltas = {"w": jnp.asarray([1.0] + [2.0**-9] * 4, jnp.bfloat16)[:, None]}
        weights = {"w": jnp.ones(5, jnp.float32)}
        acc = selective.accumulate(
            selective.init({"w": jax.ShapeDtypeStruct((1,), jnp.bfloat16)}), deltas, weights
        )
        self.assertEqual(acc.weighted_delta["w"].dtype, jnp.float32)
        np.testing.assert_array_equal(acc.weighted_delta["w"], [1.0 + 4 * 2.0**-9])
        bf16_sum = jnp.sum(deltas["w"], axis=0, dtype=jnp.bfloat16)
        self.assertNotEqual(float(bf16_sum[0]), 1.0 + 4 * 2.0**-9)
        self.assertEqual(selective.mean_of(acc).delta["w"].dtype, jnp.float32)

    def test_jit_agrees(self):
        deltas, weights = _cohort()
        _check_expected(self, jax.jit(selective.mean)(deltas, weights))


if __name__ == "__main__":
    absltest.main()

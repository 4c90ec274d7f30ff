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
"""Tests of the secure aggregation protocol: exact sums, dropouts, aborts, uniformity."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized
from scipy import stats

from fedjax_m3t.secure import graph, protocol, quantize
from tests.secure import fast_compile

K, SEGMENTS, SIZE = 10, 3, 600  # 10 clients, 3 leaves of 600 coordinates.
SEGMENT = np.repeat(np.arange(SEGMENTS), SIZE).astype(np.int32)


setUpModule = fast_compile.set_up
tearDownModule = fast_compile.tear_down


@functools.partial(jax.jit, static_argnames="proto")
def _run(key, values, holders, participants, dropped, proto, late=None):
    return protocol.run(
        key, values, holders, jnp.asarray(SEGMENT), participants, dropped, proto, late
    )


def _inputs(bits=24):
    rng = np.random.default_rng(0)
    q = rng.integers(-(2**16), 2**16, size=(K, SEGMENTS * SIZE)).astype(np.int32)
    holders = np.ones((K, SEGMENTS), bool)
    holders[2, 1] = holders[5, 2] = holders[7, 2] = False  # Leaves these clients do not send.
    participants = np.ones(K, bool)
    participants[9] = False  # A padding slot.
    return q, holders, participants, quantize.to_ring(jnp.asarray(q), bits)


def _protocol(kind="complete"):
    # t = floor(0.4 * degree) + 1: 4 of 8 neighbours (complete), 3 of 6 (harary), so
    # 3 dropouts never leave a client below its threshold.
    return protocol.Protocol(bits=24, graph=kind, degree=6, threshold=0.4)


def _plain_sum(q, holders, sent):
    """The integer sum over senders, each segment over the senders that hold it."""
    held = holders[:, SEGMENT] & sent[:, None]
    return np.where(held, q, 0).sum(axis=0)


class ProtocolTest(parameterized.TestCase):
    @parameterized.product(drop=(0, 1, 3), kind=("complete", "harary"))
    def test_unmasked_sum_is_the_exact_integer_sum(self, drop, kind):
        # 0, 1 and 3 of the 9 participants (about 30%) drop before sending.
        q, holders, participants, values = _inputs()
        dropped = np.zeros(K, bool)
        dropped[[4, 0, 6][:drop]] = True
        outcome, transcript = _run(
            jax.random.key(3), values, holders, participants, dropped, _protocol(kind)
        )
        self.assertTrue(bool(outcome.ok))
        self.assertEqual(int(outcome.survivors), 9 - drop)
        self.assertEqual(int(outcome.dropped), drop)
        want = _plain_sum(q, holders, participants & ~dropped)
        np.testing.assert_array_equal(quantize.from_ring(outcome.total, 24), want)
        # The server's request never asks for both secrets of one client.
        self.assertFalse(np.any(transcript.reveal_self_of & transcript.reveal_key_of))
        np.testing.assert_array_equal(transcript.reveal_key_of, dropped)
        # Nothing is sent for a dropped client or outside a client's leaves.
        masked = np.asarray(transcript.masked)
        self.assertFalse(np.any(masked[dropped | ~participants]))
        self.assertFalse(np.any(masked[2, SEGMENT == 1]))

    def test_late_dropouts_stay_in_the_exact_sum(self):
        # Client 4 drops before sending; clients 0 and 6 send y_u, then drop before the
        # unmasking: their inputs are in the sum, their b shares are revealed by the
        # 6 responders (>= the threshold 4 of 8), and nobody asks for their s^SK.
        q, holders, participants, values = _inputs()
        dropped, late = np.zeros(K, bool), np.zeros(K, bool)
        dropped[4] = True
        late[[0, 6]] = True
        outcome, transcript = _run(
            jax.random.key(3), values, holders, participants, dropped, _protocol(), late
        )
        self.assertTrue(bool(outcome.ok))
        self.assertEqual(int(outcome.survivors), 8)
        want = _plain_sum(q, holders, participants & ~dropped)
        np.testing.assert_array_equal(quantize.from_ring(outcome.total, 24), want)
        np.testing.assert_array_equal(transcript.reveal_key_of, dropped)
        self.assertTrue(bool(transcript.reveal_self_of[0] & transcript.reveal_self_of[6]))
        # The late clients answered nothing; the 6 responders revealed b_0.
        revealed = np.asarray(transcript.revealed_self)
        self.assertFalse(np.any(revealed[:, [0, 6]]))
        self.assertEqual(int(np.any(revealed[0] > 0, axis=-1).sum()), 6)

    def test_too_many_dropouts_abort_with_the_numbers(self):
        # 6 of 9 drop: a survivor keeps 2 responding neighbours (the other survivors)
        # of its 8, below its threshold floor(0.4 * 8) + 1 = 4.
        q, holders, participants, values = _inputs()
        dropped = np.zeros(K, bool)
        dropped[:6] = True
        outcome, _ = _run(jax.random.key(3), values, holders, participants, dropped, _protocol())
        self.assertFalse(bool(outcome.ok))
        self.assertEqual(int(outcome.worst_holders), 2)
        self.assertEqual(int(outcome.worst_threshold), 4)

    def test_honest_clients_refuse_a_request_for_both_secrets(self):
        sent = jnp.ones(K, bool)

        @jax.jit
        def revealed_by(greedy):
            secrets, _, adjacency, _ = protocol.advertise_and_share(
                jax.random.key(0), sent, _protocol()
            )
            self_of, key_of = protocol.requests(sent, sent)
            key_of = key_of.at[3].set(greedy)  # Also asks for client 3's key shares.
            return protocol.reveal(secrets, adjacency, sent, self_of, key_of)

        honest_self, honest_key = revealed_by(False)
        self.assertTrue(np.all(np.asarray(honest_self)[graph.complete(sent)] > 0))
        self.assertFalse(np.any(honest_key))
        greedy_self, greedy_key = revealed_by(True)
        self.assertFalse(np.any(greedy_self) or np.any(greedy_key))

    def test_one_masked_vector_is_uniform_on_the_ring(self):
        # Client 3's masked vector on Z_{2^24}, 1,800 coordinates, fixed seed: its top
        # and bottom 4 bits each pass a chi-square test of uniformity over 16 bins
        # (about 112 per bin), while its input fails it.
        q, holders, participants, values = _inputs()
        _, transcript = _run(
            jax.random.key(3), values, holders, participants, np.zeros(K, bool), _protocol()
        )
        masked = np.asarray(transcript.masked[3])
        for digits in (masked >> 20, masked & 15):
            counts = np.bincount(digits, minlength=16)
            self.assertLen(counts, 16)
            self.assertGreater(stats.chisquare(counts).pvalue, 0.01)
        plain = np.bincount(np.asarray(values[3]) >> 20, minlength=16)
        self.assertLess(stats.chisquare(plain).pvalue, 1e-100)


class GraphTest(absltest.TestCase):
    def test_harary_graph_is_symmetric_with_the_degree(self):
        participants = jnp.arange(12) < 11  # 11 participants, 1 padding slot.
        adjacency = np.asarray(graph.harary(jax.random.key(0), participants, 4))
        np.testing.assert_array_equal(adjacency, adjacency.T)
        np.testing.assert_array_equal(adjacency.sum(1), [4] * 11 + [0])
        np.testing.assert_array_equal(graph.thresholds(jnp.asarray(adjacency), 0.5)[:11], 3)
        with self.assertRaisesRegex(ValueError, "even"):
            graph.harary(jax.random.key(0), participants, 3)

    def test_small_cohort_harary_is_complete(self):
        participants = jnp.ones(5, bool)
        np.testing.assert_array_equal(
            graph.harary(jax.random.key(0), participants, 6), graph.complete(participants)
        )


if __name__ == "__main__":
    absltest.main()

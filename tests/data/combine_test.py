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
"""Tests of multi-modal institutions combined from single-dataset federations."""

import jax
import numpy as np
import pytest

from fedjax_m3t.data import combine, federation
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.models import m3t


def _logs(sizes):
    """Interaction-only clients with a binary task; example i has skill i % 5 + 1."""
    spec = spec_lib.DataSpec(
        modalities=("interaction",),
        tasks=(spec_lib.TaskSpec(name="correct", kind="binary"),),
        num_skills=5,
        interaction_length=3,
    )
    n = sum(sizes)
    x = np.zeros((n, 3, 2), np.int32)
    x[:, -1, 0] = np.arange(n) % 5 + 1
    x[:, -1, 1] = 2
    examples = {
        "inputs": {"interaction": x},
        "present": {"interaction": np.ones(n, bool)},
        "labels": {"correct": (np.arange(n) % 2).astype(np.float32)},
        "label_mask": {"correct": np.ones(n, bool)},
    }
    starts = np.cumsum([0] + list(sizes))
    rows = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    names = [f"school{i}" for i in range(len(sizes))]
    return federation.from_rows(
        spec, names, [r[:-1] for r in rows], [r[-1:] for r in rows], examples
    )


def _essays(sizes):
    """Text-only clients with a regression task; example i has score i / 10."""
    spec = spec_lib.DataSpec(
        modalities=("text",),
        tasks=(spec_lib.TaskSpec(name="score", kind="regression"),),
        text_vocab_size=7,
        text_length=4,
    )
    n = sum(sizes)
    examples = {
        "inputs": {"text": np.full((n, 4), 3, np.int32)},
        "present": {"text": np.ones(n, bool)},
        "labels": {"score": np.arange(n, dtype=np.float32) / 10},
        "label_mask": {"score": np.ones(n, bool)},
    }
    starts = np.cumsum([0] + list(sizes))
    rows = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    names = [f"set{i}" for i in range(len(sizes))]
    return federation.from_rows(
        spec, names, [r[:-1] for r in rows], [r[-1:] for r in rows], examples
    )


def test_pair_by_size_matches_the_kth_largest_clients():
    logs, essays = _logs([3, 6, 4]), _essays([5, 2])
    # Train sizes: logs [2, 5, 3], essays [4, 1].
    assert combine.pair_by_size([logs, essays]) == [[1, 0], [2, 1], [0, None]]


def test_combined_clients_hold_every_member_example_with_its_own_modalities():
    logs, essays = _logs([3, 6, 4]), _essays([5, 2])
    fed = combine.combine_by_size([logs, essays])
    assert fed.client_names == ("school1+set0", "school2+set1", "school0")
    assert fed.spec.modalities == ("text", "interaction")
    assert fed.spec.task_names == ("correct", "score")
    assert (fed.spec.num_skills, fed.spec.text_vocab_size, fed.spec.text_length) == (5, 7, 4)
    np.testing.assert_array_equal(fed.num_examples("train"), [5 + 4, 3 + 1, 2])
    np.testing.assert_array_equal(fed.num_examples("test"), [2, 2, 1])
    total = logs.num_examples().sum() + essays.num_examples().sum()
    assert fed.num_examples().sum() == total
    train = fed.train
    # Client 0: school1's 5 train examples (rows 3..7 of the logs), then set0's 4.
    np.testing.assert_array_equal(train["present"]["interaction"][0, :9], [1] * 5 + [0] * 4)
    np.testing.assert_array_equal(train["present"]["text"][0, :9], [0] * 5 + [1] * 4)
    np.testing.assert_array_equal(
        train["inputs"]["interaction"][0, :5, -1, 0], np.arange(3, 8) % 5 + 1
    )
    np.testing.assert_array_equal(train["inputs"]["interaction"][0, 5:9], 0)
    np.testing.assert_array_equal(train["label_mask"]["score"][0, :9], [0] * 5 + [1] * 4)
    np.testing.assert_allclose(train["labels"]["score"][0, 5:9], np.arange(4) / 10)
    np.testing.assert_array_equal(train["mask"][0], [1] * 9)
    # The single-dataset client has no text and no score labels.
    assert fed.modality_coverage()["text"][2] == 0
    assert fed.label_coverage()["score"][2] == 0


def test_the_m3t_model_reads_a_combined_federation_and_counts_module_usage():
    fed = combine.combine_by_size([_logs([3, 6, 4]), _essays([5, 2])])
    model = m3t.build_m3t_model(fed.spec, m3t.M3TConfig(width=8, depth=1, num_heads=2))
    client = jax.tree.map(lambda x: x[0], fed.train)
    out = model.apply(model.init(jax.random.key(0)), client)
    assert out["correct"].shape == out["score"].shape == (9,)
    usage = model.module_usage(client)
    assert float(usage["encoders/interaction"]) == 5
    assert float(usage["encoders/text"]) == 4
    assert float(usage["heads/score"]) == 4


def test_bad_combinations_say_what_is_wrong():
    logs = _logs([3, 4])
    with pytest.raises(ValueError, match="no member"):
        combine.combine([logs, _essays([3])], [[0, 0], [None, None]])
    with pytest.raises(ValueError, match="out of range or reused"):
        combine.combine([logs, _essays([3])], [[0, 0], [0, None]])
    with pytest.raises(ValueError, match="lists 1 members for 2 parts"):
        combine.combine([logs, _essays([3])], [[0]])
    other = _logs([3])
    other = federation.Federation(
        spec=spec_lib.DataSpec(
            modalities=("interaction",), tasks=other.spec.tasks, num_skills=6,
            interaction_length=3,
        ),
        client_names=other.client_names,
        train=other.train,
        test=other.test,
    )  # fmt: skip
    with pytest.raises(ValueError, match="modality 'interaction' but with different sizes"):
        combine.combine_by_size([logs, other])


def test_sentence_embeddings_combine_whatever_their_token_length():
    def spec(length, task):
        return spec_lib.DataSpec(
            modalities=("text",),
            tasks=(spec_lib.TaskSpec(name=task, kind="binary"),),
            text_embedding_dim=6,
            text_length=length,
        )

    merged = combine.combined_spec([spec(128, "a"), spec(96, "b")])
    assert merged.text_embedding_dim == 6 and merged.task_names == ("a", "b")
    tokens = spec_lib.DataSpec(
        modalities=("text",), tasks=(spec_lib.TaskSpec(name="c", kind="binary"),), text_length=96
    )
    with pytest.raises(ValueError, match="modality 'text' but with different sizes"):
        combine.combined_spec([spec(96, "a"), tokens])

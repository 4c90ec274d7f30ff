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
"""Runs that cannot silently continue the wrong state: identity, locks, damage, Ctrl-C.

Issue #18 items 1.2 (the library resumes only the run that wrote a checkpoint) and
1.5 (workdir safety), on a 4-5 client linear federation (each run is a fraction
of a second once compiled).
"""

import dataclasses
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from fedjax_m3t import simulation
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.models import interface, linear
from fedjax_m3t.simulation import checkpoint, identity, workdir
from tests import helpers


def _federation(num_clients=4, seed=0):
    spec = helpers.tabular_spec()
    rng = np.random.default_rng(seed)
    return helpers.federation(spec, [helpers.linear_client(rng, 4) for _ in range(num_clients)])


def _algorithm(model, name="fedadam", **kwargs):
    return registry.build_algorithm(
        name,
        model,
        local=local_training.LocalTrainingConfig(local_steps=1, batch_size=2),
        client_learning_rate=0.1,
        server_learning_rate=kwargs.pop("server_lr", 0.05),
        **kwargs,
    )


def _config(workdir_, rounds=2, **kwargs):
    defaults = dict(
        cohort_size=2, checkpoint_every=0, num_devices=1, verbose=False, workdir=workdir_
    )
    return simulation.SimulationConfig(rounds=rounds, **{**defaults, **kwargs})


def _run(workdir_, *, name="fedadam", federation=None, model=None, rounds=2, **kwargs):
    federation = federation or _federation()
    model = model or linear.build_linear_model(federation.spec)
    algorithm = _algorithm(model, name)
    return simulation.run(algorithm, model, federation, _config(workdir_, rounds, **kwargs))


@functools.cache
def _reference():
    """The uninterrupted 3-round run, writing nothing."""
    return _run(None, rounds=3)


def _assert_close(got, want):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)


def _rounds(workdir_):
    with open(os.path.join(workdir_, "metrics.jsonl")) as f:
        return [json.loads(line)["round"] for line in f if line.strip()]


def test_fedyogi_does_not_continue_a_fedadam_checkpoint(tmp_path):
    _run(str(tmp_path))
    # Same state shapes, another algorithm: refused, naming the change.
    with pytest.raises(checkpoint.ResumeError, match=r"algorithm.name: fedadam -> fedyogi"):
        _run(str(tmp_path), name="fedyogi", rounds=3)
    with pytest.raises(checkpoint.ResumeError, match=r"algorithm.server_lr: 0.05 -> 0.5"):
        federation = _federation()
        model = linear.build_linear_model(federation.spec)
        algorithm = _algorithm(model, server_lr=0.5)
        simulation.run(algorithm, model, federation, _config(str(tmp_path), 3))
    # On purpose: continues the saved FedAdam state for one more round.
    forced = _run(str(tmp_path), name="fedyogi", rounds=3, resume="force")
    assert int(forced.server_state.round) == 3
    assert _rounds(str(tmp_path)) == [1, 2, 3]


def test_other_federation_model_seed_or_cohort_is_refused(tmp_path):
    _run(str(tmp_path))
    five = _federation(num_clients=5)
    with pytest.raises(checkpoint.ResumeError, match=r"federation.num_clients: 4 -> 5"):
        _run(str(tmp_path), federation=five, rounds=3)
    other_data = _federation(seed=1)  # Same sizes, other examples: same identity...
    other_names = dataclasses.replace(other_data, client_names=("a", "b", "c", "d"))
    with pytest.raises(checkpoint.ResumeError, match=r"federation.client_names"):
        _run(str(tmp_path), federation=other_names, rounds=3)
    base = linear.build_linear_model(_federation().spec)
    bigger = interface.Model(
        spec=base.spec,
        init=lambda key: {**base.init(key), "extra": {"w": jax.numpy.zeros((3,))}},
        apply=base.apply,
        module_usage=base.module_usage,
    )
    with pytest.raises(checkpoint.ResumeError, match=r"model.num_params: 3 -> 6"):
        _run(str(tmp_path), model=bigger, rounds=3)
    with pytest.raises(checkpoint.ResumeError, match=r"seed: 0 -> 1"):
        _run(str(tmp_path), rounds=3, seed=1)
    with pytest.raises(checkpoint.ResumeError, match=r"cohort_size: 2 -> 3"):
        _run(str(tmp_path), rounds=3, cohort_size=3)
    # The same run continues.
    final = _run(str(tmp_path), rounds=3)
    assert int(final.server_state.round) == 3
    # And reads back for inference; only with its own algorithm, model and federation.
    federation = _federation()
    model = linear.build_linear_model(federation.spec)
    loaded = simulation.loop.load(str(tmp_path), _algorithm(model), model, federation)
    assert loaded.round == 3 and loaded.meta["engine"]["num_devices"] == 1
    _assert_close(loaded.server_state.params, final.server_state.params)
    with pytest.raises(
        checkpoint.ResumeError, match=r"another run: .*federation.num_clients: 4 -> 5"
    ):
        simulation.loop.load(str(tmp_path), _algorithm(model), model, five)


def test_old_checkpoint_cut_metrics_line_and_fewer_rounds(tmp_path):
    """A checkpoint of an earlier version (no identity) resumes; a record cut by a kill
    is skipped; asking for fewer rounds than the checkpoint has is refused."""
    first = _run(str(tmp_path))
    shutil.rmtree(os.path.join(tmp_path, "checkpoints"))
    ckpt = checkpoint.Checkpointer(os.path.join(tmp_path, "checkpoints"))
    state = {"server_state": first.server_state, "client_states": first.client_states}
    ckpt.save(2, state, {"round": 2, "fingerprint": {}})  # As earlier versions saved.
    ckpt.close()
    with open(os.path.join(tmp_path, "metrics.jsonl"), "a") as f:
        f.write('{"round": 3, "loss": 0.12')  # A kill during the write of round 3.
    result = _run(str(tmp_path), rounds=3)
    assert int(result.server_state.round) == 3
    assert [r["round"] for r in result.history] == [1, 2, 3]
    assert _rounds(str(tmp_path)) == [1, 2, 3]
    with pytest.raises(checkpoint.ResumeError, match="at round 3, past the 2 rounds"):
        _run(str(tmp_path), rounds=2)


def test_damaged_checkpoint_falls_back_to_the_newest_intact(tmp_path, capsys):
    reference = _reference()
    _run(str(tmp_path), rounds=3, checkpoint_every=1)  # Keeps rounds 2 and 3.
    newest = os.path.join(tmp_path, "checkpoints", "3", "state")
    for root, _, files in os.walk(newest):
        for name in files:
            os.remove(os.path.join(root, name))
    os.remove(os.path.join(tmp_path, "checkpoints", "3", "meta", "metadata"))
    resumed = _run(str(tmp_path), rounds=3, verbose=True)
    out = capsys.readouterr().out
    assert "checkpoint of round 3" in out and "damaged" in out
    assert "Resumed from the checkpoint of round 2" in out
    assert os.path.isdir(os.path.join(tmp_path, "checkpoints", "3.damaged"))
    _assert_close(resumed.server_state.params, reference.server_state.params)
    assert _rounds(str(tmp_path)) == [1, 2, 3]
    # None intact: a clear error, not a traceback from orbax.
    for round_num in (2, 3):
        os.remove(os.path.join(tmp_path, "checkpoints", str(round_num), "meta", "metadata"))
    with pytest.raises(checkpoint.ResumeError, match="reads back"):
        _run(str(tmp_path), rounds=3)


def test_lock_names_its_holder_and_stale_locks_are_taken_over(tmp_path, capsys):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = os.path.join(tmp_path, workdir.LOCK_FILE)
        with open(path, "w") as f:
            json.dump({"pid": live.pid, "host": socket.gethostname(), "started": "t0"}, f)
        with pytest.raises(workdir.WorkdirError, match=f"in use by pid {live.pid} on .*t0"):
            _run(str(tmp_path))
        assert not os.path.exists(os.path.join(tmp_path, "metrics.jsonl"))
        with open(path, "w") as f:  # Another host: never guessed about.
            json.dump({"pid": 1, "host": "elsewhere", "started": "t1"}, f)
        with pytest.raises(workdir.WorkdirError, match="pid 1 on elsewhere"):
            _run(str(tmp_path))
    finally:
        live.kill()
        live.wait()
    with open(path, "w") as f:  # Now dead: a stale lock (kill -9) is taken over.
        json.dump({"pid": live.pid, "host": socket.gethostname(), "started": "t0"}, f)
    _run(str(tmp_path), verbose=True)
    assert f"Taking over the lock of pid {live.pid}" in capsys.readouterr().out
    assert not os.path.exists(path)  # Released at the end.


def test_workdir_that_is_a_file_or_read_only(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(workdir.WorkdirError, match="is a file"):
        _run(str(afile))
    if os.geteuid() != 0:  # root writes anywhere.
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(workdir.WorkdirError, match="not writable"):
            _run(str(ro))


def test_ctrl_c_keeps_the_saved_round_and_its_record(tmp_path):
    reference = _reference()
    federation = _federation()
    model = linear.build_linear_model(federation.spec)

    def interrupt(info):
        if info.round == 2:
            signal.raise_signal(signal.SIGINT)

    config = _config(str(tmp_path), 3)
    with pytest.raises(KeyboardInterrupt):
        simulation.run(_algorithm(model), model, federation, config, hooks=[interrupt])
    ckpt = checkpoint.Checkpointer(os.path.join(tmp_path, "checkpoints"))
    assert ckpt.rounds() == [2]
    ckpt.close()
    assert _rounds(str(tmp_path)) == [1, 2]
    assert not os.path.exists(os.path.join(tmp_path, workdir.LOCK_FILE))
    resumed = _run(str(tmp_path), rounds=3)
    _assert_close(resumed.server_state.params, reference.server_state.params)


def test_more_devices_than_visible_is_refused():
    visible = len(jax.local_devices())
    with pytest.raises(ValueError, match=f"exceeds the {visible} visible"):
        simulation.loop.engine_plan(simulation.SimulationConfig(num_devices=visible + 1))


def test_identity_differences_are_named():
    a = identity.run_identity(
        _algorithm(linear.build_linear_model(_federation().spec)),
        linear.build_linear_model(_federation().spec),
        _federation(),
        seed=0,
        cohort_size=2,
    )
    assert a["algorithm"]["name"] == "fedadam" and a["federation"]["num_clients"] == 4
    assert identity.differences(a, a) == []
    json.dumps(a)  # JSON values only: it is saved with every checkpoint.

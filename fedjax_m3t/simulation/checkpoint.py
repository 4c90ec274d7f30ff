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
"""Checkpoints of a simulation with orbax: state pytrees plus JSON metadata.

The state saved is everything a resumed run needs to continue bit-for-bit:
the server state and every client's personal state. Round keys are derived from
the seed and the round number, so no RNG state needs saving.
"""

import os

import orbax.checkpoint as ocp

from fedjax_m3t import typing as t


class Checkpointer:
    """Saves and restores (state pytree, metadata dict) by round number.

    Args:
      directory: where checkpoints go (created if missing).
      max_to_keep: how many recent checkpoints to keep.
    """

    def __init__(self, directory: str, max_to_keep: int = 2):
        self._manager = ocp.CheckpointManager(
            os.path.abspath(directory),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_round(self) -> int | None:
        """The newest saved round, or None."""
        return self._manager.latest_step()

    def save(self, round_num: int, state: t.PyTree, meta: dict) -> None:
        """Saves synchronously (a resumed run must find it even after a crash)."""
        self._manager.save(
            round_num,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore(self, template: t.PyTree, round_num: int | None = None) -> tuple[t.PyTree, dict]:
        """Restores the state (shaped like `template`) and metadata of a round (default: latest).

        Raises:
          FileNotFoundError: if there is no checkpoint.
        """
        round_num = self.latest_round() if round_num is None else round_num
        if round_num is None:
            raise FileNotFoundError(f"No checkpoint in {self._manager.directory}.")
        restored = self._manager.restore(
            round_num,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()
            ),
        )
        return restored.state, restored.meta

    def close(self) -> None:
        self._manager.close()

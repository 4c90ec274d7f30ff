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

A checkpoint that cannot be read (a kill during a copy, a disk error) is skipped
for the newest intact one, with a message (`restore_newest_intact`).
"""

import os
from collections.abc import Callable

import orbax.checkpoint as ocp

from fedjax_m3t import typing as t


class ResumeError(ValueError):
    """A workdir's checkpoint that this run must not continue; the message says why."""


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

    def rounds(self) -> list[int]:
        """Every saved round, oldest first."""
        return sorted(self._manager.all_steps())

    def read_meta(self, round_num: int) -> dict:
        """The metadata of a round's checkpoint (its state is not read)."""
        restored = self._manager.restore(
            round_num, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
        )
        return restored.meta

    def restore_newest_intact(
        self,
        template: t.PyTree,
        check: Callable[[dict], None] = lambda meta: None,
        say: Callable[[str], None] = print,
    ) -> tuple[t.PyTree, dict] | None:
        """The newest checkpoint that reads back, skipping damaged ones with a message.

        Args:
          template: the state's structure, shapes and dtypes.
          check: called with a checkpoint's metadata before its state is read; raises
            (e.g. ResumeError) to refuse it. Its errors are not treated as damage.
          say: where the messages about skipped checkpoints go.

        Returns:
          (state, metadata), or None when there is no checkpoint.

        Raises:
          ResumeError: if checkpoints exist and none of them reads back.
        """
        rounds, damaged = self.rounds(), []
        for round_num in reversed(rounds):
            try:
                meta = self.read_meta(round_num)
            except Exception as e:  # noqa: BLE001 - any failure to read is damage.
                say(_damaged(self._manager.directory, round_num, e))
                damaged.append(round_num)
                continue
            check(meta)
            try:
                state, meta = self.restore(template, round_num)
            except Exception as e:  # noqa: BLE001
                say(_damaged(self._manager.directory, round_num, e))
                damaged.append(round_num)
                continue
            self._set_aside(damaged, say)
            return state, meta
        if not rounds:
            return None
        raise ResumeError(
            f"No checkpoint in {self._manager.directory} reads back (rounds {rounds}); "
            "delete that folder to start again, or use a new --workdir."
        )

    def _set_aside(self, rounds: list[int], say: Callable[[str], None]) -> None:
        """Renames damaged checkpoints to '<round>.damaged' (kept for a look, never read).

        The resumed run saves those rounds again, which orbax refuses while they exist.
        """
        for round_num in rounds:
            path = os.path.join(os.fspath(self._manager.directory), str(round_num))
            os.replace(path, path + ".damaged")
            say(f"Moved the damaged checkpoint aside to {path}.damaged.")
        if rounds:
            self._manager.reload()

    def close(self) -> None:
        self._manager.close()


def _damaged(directory, round_num: int, error: Exception) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return (
        f"The checkpoint of round {round_num} in {directory} is damaged or of another shape "
        f"({type(error).__name__}: {first}); trying the one before it."
    )

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
"""One run per workdir at a time: a lock file that names its holder.

Two runs writing one workdir at once interleave their metrics records and race on
checkpoints. `lock(workdir)` creates `<workdir>/run.lock` atomically (O_EXCL)
holding {pid, host, started}; a second run is refused with a message naming the
holder. A lock left by a run that died (kill -9) is taken over when its pid no
longer runs on this host; a lock from another host is never guessed about. The
lock is re-entrant within a process (the binary holds it while it checks and
writes config.json, then `simulation.run` takes it again).
"""

import contextlib
import datetime
import json
import os
import socket

LOCK_FILE = "run.lock"


class WorkdirError(RuntimeError):
    """The workdir cannot be used (held by another run, not a writable directory)."""


_held: dict[str, int] = {}  # Absolute workdir -> nesting depth, for this process.


def check_writable(workdir: str) -> None:
    """Raises WorkdirError unless `workdir` is (or can be made) a writable directory."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"--workdir={workdir} is a file, not a directory; choose a folder.")
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"--workdir={workdir} cannot be created ({e.strerror}).") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise WorkdirError(f"--workdir={workdir} is not writable; choose another folder.")


def holder(workdir: str) -> dict | None:
    """The {pid, host, started} of the run holding `workdir`'s lock, or None."""
    try:
        with open(os.path.join(workdir, LOCK_FILE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # Being written, or damaged: held by someone unknown.


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def lock(workdir: str, say=print):
    """Holds `<workdir>/run.lock` for the duration of the block.

    Args:
      workdir: the run's output folder (created if missing).
      say: where the message about a stale lock taken over goes.

    Raises:
      WorkdirError: if another live run holds it (naming its pid, host and start),
        or the workdir is not a writable folder.
    """
    key = os.path.abspath(workdir)
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    check_writable(workdir)
    path = os.path.join(workdir, LOCK_FILE)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = holder(workdir)
            if other is None:
                continue  # Released meanwhile.
            stale = other.get("host") == me["host"] and not _running(int(other.get("pid", -1)))
            if not stale:
                who = (
                    f"pid {other.get('pid')} on {other.get('host')}, started {other.get('started')}"
                    if other
                    else "an unknown run"
                )
                raise WorkdirError(
                    f"--workdir={workdir} is in use by {who} (lock file {path}). Wait for it, "
                    "use another --workdir, or delete the lock file if that run is gone."
                ) from None
            say(f"Taking over the lock of pid {other['pid']}, which no longer runs ({path}).")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise WorkdirError(f"Could not take the lock {path}; retry.")
    _held[key] = 1
    try:
        yield
    finally:
        _held.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)

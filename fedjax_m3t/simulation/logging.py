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
"""Per-round metric records: JSON lines, optional TensorBoard, and progress lines."""

import json
import math
import os
import shutil
import sys
from typing import TextIO

METRICS_FILE = "metrics.jsonl"


def _clean(value):
    value = float(value)
    return None if math.isnan(value) else value


class MetricsWriter:
    """Appends one JSON record per round to `<workdir>/metrics.jsonl`.

    Args:
      workdir: output directory, or None to write nothing to disk.
      tensorboard: also write TensorBoard event files under `<workdir>/tb`
        (needs the tensorboardX package: pip install 'fedjax_m3t[tensorboard]').
      keep_until: when resuming from a checkpoint at this round, records of later
        rounds (written after that checkpoint by the interrupted run) are dropped.
    """

    def __init__(self, workdir: str | None, *, tensorboard: bool = False, keep_until: int = 0):
        self._path = os.path.join(workdir, METRICS_FILE) if workdir else None
        self._tb = None
        if self._path:
            os.makedirs(workdir, exist_ok=True)
            _truncate_after(self._path, keep_until)
        if tensorboard:
            if not workdir:
                raise ValueError("TensorBoard logging needs a workdir.")
            try:
                import tensorboardX  # noqa: PLC0415 - optional dependency.
            except ImportError as e:
                raise ImportError(
                    "TensorBoard logging needs tensorboardX: pip install 'fedjax_m3t[tensorboard]'"
                ) from e
            self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, round_num: int, metrics: dict) -> None:
        """Writes one record {'round': round_num, **metrics} (floats; NaN -> null)."""
        record = {"round": int(round_num), **{k: _clean(v) for k, v in metrics.items()}}
        if self._path:
            with open(self._path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "round" and v is not None:
                    self._tb.add_scalar(k, v, round_num)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _truncate_after(path: str, keep_until: int) -> None:
    if not os.path.exists(path):
        return
    records = _read_lines(path)
    kept = [r for r in records if r.get("round", 0) <= keep_until]
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)


def _read_lines(path: str) -> list[dict]:
    """The records of a metrics file; a line cut short by a kill mid-write is skipped."""
    records = []
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log(f"{path}: skipping line {number}, which is not a whole record (a cut write).")
    return records


def read_metrics(workdir: str) -> list[dict]:
    """The records of `<workdir>/metrics.jsonl`, in order (cut lines skipped)."""
    return _read_lines(os.path.join(workdir, METRICS_FILE))


def progress_line(
    round_num: int,
    total: int,
    metrics: dict,
    seconds: float,
    *,
    elapsed: float | None = None,
    eta: float | None = None,
    compiling: bool = False,
) -> str:
    """'round   3/50  loss 0.6931 ... test/y/r2 0.1200  0.42 s  elapsed 1.3 s  ETA 20 s'.

    Shows the losses, the update norm and the primary test metrics of an
    evaluation round (auc, r2, accuracy); `compiling` marks a round that included
    XLA compilation (the first of a process), whose time says little of the rest.
    """
    shown = " ".join(
        f"{k} {float(v):.4f}"
        for k, v in metrics.items()
        if k.startswith("loss")
        or k in ("update_norm", "epsilon")
        or (k.startswith(("test/", "personal/")) and k.endswith(("/auc", "/r2", "/accuracy")))
    )
    width = len(str(total))
    line = f"round {round_num:>{width}}/{total}  {shown}  {seconds:.2f} s"
    if compiling:
        line += " (compiling)"
    if elapsed is not None:
        line += f"  elapsed {_duration(elapsed)}"
    if eta is not None:
        line += f"  ETA {_duration(eta)}"
    return line


def _duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '2 h 01 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


BAR_WIDTH = 20  # Characters between the brackets of the progress bar.
_CLEAR_LINE = "\r\x1b[K"  # Back to the line's start, then erase it (ANSI, every terminal).
# The streams whose last line is a progress bar still being redrawn (no newline yet).
_open_bars: set[int] = set()


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (where a bar can be redrawn in place)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # A closed stream.
        return False


def progress_bar(round_num: int, total: int) -> str:
    """'[#########...........]': the share of `total` rounds done, BAR_WIDTH wide.

    >>> progress_bar(5, 20)
    '[#####...............]'
    """
    filled = BAR_WIDTH if total <= 0 else min(BAR_WIDTH, round(BAR_WIDTH * round_num / total))
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def show_progress(
    line: str, round_num: int, total: int, *, keep: bool = False, stream: TextIO | None = None
) -> None:
    """Shows a round's `progress_line`: a bar redrawn in place on a terminal, else the line.

    On a terminal (`stream.isatty()`) the round's bar and line replace the previous
    round's, cut to the terminal's width so that the redraw stays on one line;
    `keep` rounds (evaluations, the last one) stay on the screen in full. Anything
    else (pipes, files, notebooks) gets every round's line, as a log should.

    Args:
      line: the round's `progress_line`.
      round_num, total: the round just done and the rounds of the run.
      keep: leave this round's line on the screen (a terminal only).
      stream: where to write (default sys.stdout).
    """
    stream = stream or sys.stdout
    if not is_terminal(stream):
        log(line, stream)
        return
    if keep:
        stream.write(_CLEAR_LINE + line + "\n")
        _open_bars.discard(id(stream))
    else:
        columns = shutil.get_terminal_size().columns
        text = f"{progress_bar(round_num, total)} {line}"
        stream.write(_CLEAR_LINE + text[: max(columns - 1, 1)])
        _open_bars.add(id(stream))
    stream.flush()


def end_progress(stream: TextIO | None = None) -> None:
    """Ends an open progress bar's line on `stream` (a no-op when none is open)."""
    stream = stream or sys.stdout
    if id(stream) in _open_bars:
        _open_bars.discard(id(stream))
        stream.write("\n")
        stream.flush()


def log(message: str, stream: TextIO | None = None) -> None:
    """Prints and flushes (progress must show in notebooks and piped logs).

    A progress bar open on the stream is ended first, so the message gets its own line.
    """
    stream = stream or sys.stdout
    end_progress(stream)
    print(message, file=stream, flush=True)

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
    with open(path) as f:
        records = [line for line in f if line.strip()]
    kept = [r for r in records if json.loads(r).get("round", 0) <= keep_until]
    with open(path, "w") as f:
        f.writelines(kept)


def read_metrics(workdir: str) -> list[dict]:
    """The records of `<workdir>/metrics.jsonl`, in order."""
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        return [json.loads(line) for line in f if line.strip()]


def progress_line(round_num: int, total: int, metrics: dict, seconds: float) -> str:
    """'round   3/50  loss 0.6931  loss/correct 0.69 ...  0.42 s'."""
    shown = " ".join(
        f"{k} {float(v):.4f}"
        for k, v in metrics.items()
        if k.startswith("loss") or k in ("update_norm", "epsilon")
    )
    width = len(str(total))
    return f"round {round_num:>{width}}/{total}  {shown}  {seconds:.2f} s"


def log(message: str, stream: TextIO | None = None) -> None:
    """Prints and flushes (progress must show in notebooks and piped logs)."""
    print(message, file=stream or sys.stdout, flush=True)

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
"""A stand-in process for launch_test (no JAX).

Usage: python -m tests.simulation.launch_worker <dir> <mode>.

It writes <dir>/started<i> (i = FEDJAX_M3T_PROCESS_ID), then
  * mode 'fail': process 1 exits with code 3, the others wait;
  * mode 'wait': every process waits; on SIGINT it writes <dir>/interrupted<i>
    (where a training process would checkpoint) and exits 0.
"""

import os
import signal
import sys
import time


def main(directory: str, mode: str) -> None:
    index = int(os.environ["FEDJAX_M3T_PROCESS_ID"])

    def on_interrupt(signum, frame):
        open(os.path.join(directory, f"interrupted{index}"), "w").close()
        sys.exit(0)

    signal.signal(signal.SIGINT, on_interrupt)
    open(os.path.join(directory, f"started{index}"), "w").close()
    if mode == "fail" and index == 1:
        sys.exit(3)
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

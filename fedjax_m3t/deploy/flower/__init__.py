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
"""The Flower bridge: our rounds between real processes, through Flower's Message API.

  records.py     params pytrees <-> ArrayRecord, with a checked tree structure
  protocol.py    the records of each message (registration, train)
  client.py      the ClientApp: `algorithm.client_update` on an institution's data
  server.py      the Strategy: our sampler, aggregator and server step
  in_process.py  a Grid that calls ClientApps in this process (fast tests)
  loopback.py    a SuperLink and SuperNodes on 127.0.0.1 (a real deployment)

The deployed round computes what `fedjax_m3t.simulation`'s one-device round
does, with the same keys: tests/deploy/ checks that the server params agree.
Needs the 'flower' extra (`pip install -e ".[flower]"`, flwr 1.42).
"""

try:
    import flwr  # noqa: F401
except ImportError as e:
    raise ImportError(
        'The Flower bridge needs flwr: pip install -e ".[flower]" (flwr==1.42.0).'
    ) from e

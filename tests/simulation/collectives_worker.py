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
"""One process of distributed_test's collectives check (run by experiments.launch).

Usage: python -m tests.simulation.collectives_worker <out_dir>. Writes
<out_dir>/process<i>.json with this process's shards of psum, all_gather and
psum_scatter over the 'clients' mesh of every process's devices, where device d
holds the row r_d = [d, 10 d, 100 d] + 1, and scatters the n rows (j + 1) r_d
(so device j should get (j + 1) sum_d r_d).
"""

import json
import os
import sys

from fedjax_m3t.simulation import distributed


def main(out_dir: str) -> None:
    distributed.initialize_from_env()
    import jax  # noqa: PLC0415 - after initialize, as a binary would.
    import numpy as np  # noqa: PLC0415
    from jax.sharding import NamedSharding  # noqa: PLC0415
    from jax.sharding import PartitionSpec as P  # noqa: PLC0415

    from fedjax_m3t.simulation import round as round_lib  # noqa: PLC0415

    mesh = round_lib.make_client_mesh()
    n = mesh.size
    rows = np.stack([np.array([d, 10 * d, 100 * d], np.float32) + 1 for d in range(n)])
    x = distributed.put(rows, NamedSharding(mesh, P(round_lib.AXIS)))

    def collectives(a):  # a: this device's row, [1, 3].
        total = jax.lax.psum(a, round_lib.AXIS)
        gathered = jax.lax.all_gather(a, round_lib.AXIS, tiled=True)
        scattered = jax.lax.psum_scatter(
            jnp_tile(a, n), round_lib.AXIS, scatter_dimension=0, tiled=True
        )
        return total, gathered, scattered

    def jnp_tile(a, k):  # [k, 3]: row j is (j + 1) a.
        return jax.numpy.tile(a, (k, 1)) * jax.numpy.arange(1, k + 1, dtype=a.dtype)[:, None]

    fn = jax.jit(
        jax.shard_map(
            collectives,
            mesh=mesh,
            in_specs=P(round_lib.AXIS),
            out_specs=(P(round_lib.AXIS), P(round_lib.AXIS), P(round_lib.AXIS)),
            check_vma=False,
        )
    )
    outputs = fn(x)
    result = {
        "process": jax.process_index(),
        "devices": n,
        "rows": rows.tolist(),
        **{
            name: [np.asarray(s.data).tolist() for s in out.addressable_shards]
            for name, out in zip(("psum", "all_gather", "psum_scatter"), outputs, strict=True)
        },
    }
    with open(os.path.join(out_dir, f"process{jax.process_index()}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])

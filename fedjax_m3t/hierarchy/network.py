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
"""HF-FM's analytic network model: latency and energy of star, edge and D2D rounds.

A transcription in NumPy of payamsiabd/M3T-FFM `HFFM/core/network.py` (radio)
and `HFFM/methods/table_generator.py` (deployment, scenarios), the code behind
the latency / energy column of that repository's README (HF-FM, Abdisarabshali
et al. 2025, arXiv:2509.03695). Line numbers below are of those two files.

Radio (network.py:11-44): path gain beta0 (d / d0)^-alpha (beta0 = -30 dB,
d0 = 1 m, alpha = 3) times Rayleigh fading |h|^2 = x^2 + y^2 with x, y ~ N(0, 1)
(mean 2: the code does not halve it); SNR = P |h|^2 / (10^(N0/10) B) with
N0 = -174 dBm/Hz and B in kHz (the stored code multiplies by the bandwidth in
kHz, not Hz: its noise is 1000x below N0 B; its first commit had B * 1000 and a
fixed 300 kHz, and the signature without `bandwidth` that table_generator.py
could not call); rate = B log2(1 + SNR) kbit/s.

Deployment (table_generator.py:17-63, seed 49): 10 edge servers uniform in a
5 km square at least 500 m apart; per server a cluster centre within 1 km and 4
users within 500 m of it. A 6 MB model = 48,000 kbit (line 22). Uplinks at
1,000 mW over 1,000 kHz (line 71); the cloud link is 0.1 s + payload / 4,000
kbit/s (line 107); D2D links at 200 mW over 8,000 kHz (line 156), each
direction its own fading draw. Powers: cloud 800 mW, local (edge uplink) 600 mW,
D2D relay 600 mW (lines 116-117, 167). Energies are mW x s = mJ, divided by 1000
(lines 326-332): joules. The README's column says kJ; the code's says J.

D2D (lines 163-245): within each cluster, a user chosen by `random.choice`
(Python's random module, never seeded: the only unseeded draw) aggregates; the
graph joins users closer than 30 m, patched by the minimum spanning tree of
min(latency both ways) when not strongly connected; users send along shortest
paths to the aggregator (energy: 600 mW x each user's path latency) and it
broadcasts back over the union of its shortest paths (energy: 600 mW x each
tree edge once); latency: the longest path each way.

Scenarios per round (averaged over the 50 epochs, all equal), with gaf the
global aggregation frequency (cloud every gaf rounds; 200 = never in 50 rounds):
  star:        max_u cloud;  energy sum_u cloud * 800
  hierarchy:   max_c (cloud + gaf max_{u in c} up_u) / gaf;
               energy sum_c (cloud * 800 + gaf sum_{u in c} up_u 600) / gaf
  edge only:   the hierarchy's latency at gaf = 200 (so 1/200 of a cloud upload
               stays in it), its energy without the cloud term
  + D2D:       max_c (cloud + (gaf - 1)(relay_up + relay_down) + relay_up
               + mean_{u in c} up_u) / gaf; energy likewise with the relay
               energies and mean up_u x 600 (the aggregator's upload is costed
               at the cluster's mean uplink, not its own); edge only + D2D: at
               gaf = 200 without the cloud energy.
D2D changes only these costs in HF-FM: its training code has no D2D.
"""

import dataclasses
import itertools
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scenario:
    """The constants of table_generator.main (defaults: the README's run)."""

    seed: int = 49  # table_generator.py:10 and network.py:5 (two generators, one seed each).
    num_servers: int = 10
    users_per_cluster: int = 4
    min_server_distance_m: float = 500.0
    area_m: float = 5000.0
    user_max_distance_m: float = 1000.0  # Cluster centre to its server.
    cluster_radius_m: float = 500.0
    payload_kbit: float = 6 * 8000.0  # 6 MB, 1 MB = 8000 kbit (line 22).
    uplink_power_mw: float = 1000.0  # Line 71, the third positional argument.
    uplink_bandwidth_khz: float = 1000.0
    d2d_power_mw: float = 200.0  # Line 17.
    d2d_bandwidth_khz: float = 8000.0  # Line 156.
    pair_bandwidth_khz: float = 1000.0  # Lines 76-88: drawn, then overwritten (line 149).
    cloud_fixed_s: float = 0.1  # Line 107.
    cloud_rate_kbps: float = 4000.0
    cloud_power_mw: float = 800.0
    local_power_mw: float = 600.0
    relay_power_mw: float = 600.0  # Line 167.
    connect_radius_m: float = 30.0  # Line 161.
    edge_only_gaf: int = 200
    noise_dbm_per_hz: float = -174.0  # network.py:12.
    beta0_db: float = -30.0  # network.py:29-31.
    reference_distance_m: float = 1.0
    path_loss_exponent: float = 3.0


def transmission_rate(
    distance_m: np.ndarray,
    power_mw: float,
    bandwidth_khz: float,
    fading: np.ndarray,
    scenario: Scenario = Scenario(),
) -> np.ndarray:
    """Shannon rate in kbit/s of links (network.py:11-44).

    Args:
      distance_m: [...] link lengths.
      power_mw: transmit power.
      bandwidth_khz: bandwidth.
      fading: [..., 2] standard normal draws (real and imaginary parts).
      scenario: the radio constants.

    Returns:
      [...] rates, bandwidth * log2(1 + SNR).
    """
    s = scenario
    gain_db = s.beta0_db - 10 * s.path_loss_exponent * np.log10(distance_m / s.reference_distance_m)
    amplitude = np.sqrt(10 ** (gain_db / 10))
    power = np.sum((fading * amplitude[..., None]) ** 2, axis=-1) * power_mw
    noise = 10 ** (s.noise_dbm_per_hz / 10) * bandwidth_khz  # As stored: B in kHz.
    return bandwidth_khz * np.log2(1 + power / noise)


class Deployment(NamedTuple):
    """Positions (m) and clusters.

    Attributes:
      servers: [S, 2] edge servers.
      users: [S * K, 2] users, cluster by cluster.
      clusters: int [S, K] the users of each server's cluster.
    """

    servers: np.ndarray
    users: np.ndarray
    clusters: np.ndarray


def deploy(scenario: Scenario, rng: np.random.Generator) -> Deployment:
    """Servers and users as table_generator.py:24-63 draws them from `rng`."""
    s = scenario
    servers = []
    while len(servers) < s.num_servers:
        x, y = rng.uniform(0, s.area_m, size=2)
        if all(np.hypot(x - sx, y - sy) >= s.min_server_distance_m for sx, sy in servers):
            servers.append((x, y))
    inside = lambda x, y: 0 <= x <= s.area_m and 0 <= y <= s.area_m
    users = []
    for sx, sy in servers:
        while True:
            r, theta = np.sqrt(rng.random()) * s.user_max_distance_m, rng.random() * 2 * np.pi
            cx, cy = sx + r * np.cos(theta), sy + r * np.sin(theta)
            if inside(cx, cy):
                break
        for _ in range(s.users_per_cluster):
            while True:
                r, theta = np.sqrt(rng.random()) * s.cluster_radius_m, rng.random() * 2 * np.pi
                ux, uy = cx + r * np.cos(theta), cy + r * np.sin(theta)
                if inside(ux, uy):
                    users.append((ux, uy))
                    break
    clusters = np.arange(s.num_servers * s.users_per_cluster).reshape(s.num_servers, -1)
    return Deployment(np.asarray(servers), np.asarray(users), clusters)


class Links(NamedTuple):
    """Link rates (kbit/s).

    Attributes:
      uplink: [S * K] each user to its edge server.
      d2d: [S, K, K] user i -> user j of the same cluster (diagonal unused).
    """

    uplink: np.ndarray
    d2d: np.ndarray


def draw_links(deployment: Deployment, scenario: Scenario, rng: np.random.Generator) -> Links:
    """Fading draws in the order of table_generator.py:68-158 (one (1, 2) draw per call)."""
    s, d = scenario, deployment
    dist = lambda a, b: np.hypot(*(np.asarray(b) - np.asarray(a)))
    uplink = []
    for sid, users in enumerate(d.clusters):  # Lines 68-71.
        for u in users:
            fading = rng.standard_normal((1, 2))[0]
            far = dist(d.users[u], d.servers[sid])
            uplink.append(
                transmission_rate(
                    np.asarray(far), s.uplink_power_mw, s.uplink_bandwidth_khz, fading, s
                )
            )
    k = s.users_per_cluster
    for _ in d.clusters:  # Lines 76-88: pair rates drawn and never used.
        rng.standard_normal((k * (k - 1) // 2, 2))
    d2d = np.zeros((len(d.clusters), k, k))
    for c, users in enumerate(d.clusters):  # Lines 149-158: both directions, in order.
        for i, j in itertools.permutations(range(k), 2):
            fading = rng.standard_normal((1, 2))[0]
            far = np.asarray(dist(d.users[users[i]], d.users[users[j]]))
            d2d[c, i, j] = transmission_rate(far, s.d2d_power_mw, s.d2d_bandwidth_khz, fading, s)
    return Links(np.asarray(uplink, dtype=float), d2d)


def hffm_network(scenario: Scenario = Scenario()) -> tuple[Deployment, Links]:
    """The seeded deployment and links of the README's run (two generators, seed 49 each)."""
    deployment = deploy(scenario, np.random.default_rng(scenario.seed))
    return deployment, draw_links(deployment, scenario, np.random.default_rng(scenario.seed))


def _strongly_connected(adjacent: np.ndarray) -> bool:
    reach = adjacent | np.eye(len(adjacent), dtype=bool)
    for _ in range(len(adjacent)):
        reach = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
    return bool(reach.all())


def _spanning_tree(weight: np.ndarray) -> list[tuple[int, int]]:
    """Kruskal's minimum spanning tree of a symmetric weight matrix (nx's default)."""
    k = len(weight)
    root = list(range(k))

    def find(i):
        while root[i] != i:
            i = root[i]
        return i

    edges = []
    for _, i, j in sorted((weight[i, j], i, j) for i, j in itertools.combinations(range(k), 2)):
        a, b = find(i), find(j)
        if a != b:
            root[a] = b
            edges.append((i, j))
    return edges


def _shortest_paths(latency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floyd-Warshall: (lengths [K, K], next hop [K, K]); inf / -1 where unreachable."""
    k = len(latency)
    dist = latency.copy()
    np.fill_diagonal(dist, 0.0)
    nxt = np.where(np.isfinite(dist), np.arange(k)[None, :], -1)
    for m in range(k):
        via = dist[:, m : m + 1] + dist[m : m + 1, :]
        better = via < dist
        dist = np.where(better, via, dist)
        nxt = np.where(better, nxt[:, m : m + 1], nxt)
    return dist, nxt


class Relay(NamedTuple):
    """One cluster's D2D costs for one aggregator (table_generator.py:242-245)."""

    up_latency: float  # Longest path to the aggregator (s).
    down_latency: float  # Longest path from it (s).
    up_energy: float  # Sum over users of relay power x path latency (mJ).
    down_energy: float  # Sum over broadcast tree edges of relay power x latency (mJ).


def relay(
    positions: np.ndarray,
    rates: np.ndarray,
    aggregator: int,
    payload_kbit: float,
    scenario: Scenario,
) -> Relay:
    """D2D aggregation and broadcast costs of one cluster (table_generator.py:168-245).

    Args:
      positions: [K, 2] the cluster's users.
      rates: [K, K] D2D rates i -> j (kbit/s).
      aggregator: index in [0, K) of the aggregating user.
      payload_kbit: what each hop carries.
      scenario: the radius and relay power.
    """
    k = len(positions)
    latency = np.full((k, k), np.inf)
    off = ~np.eye(k, dtype=bool)
    lat = np.where(off, payload_kbit / np.where(off, rates, 1.0), np.inf)
    apart = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    close = (apart <= scenario.connect_radius_m) & off
    latency[close] = lat[close]
    if not _strongly_connected(np.isfinite(latency) & off):  # Lines 183-195.
        for i, j in _spanning_tree(np.minimum(lat, lat.T)):
            latency[i, j], latency[j, i] = lat[i, j], lat[j, i]
    dist, nxt = _shortest_paths(latency)
    tree_edges = set()
    for target in range(k):  # Lines 213-226: the union of the aggregator's paths.
        node = aggregator
        while node != target:
            hop = int(nxt[node, target])
            tree_edges.add((node, hop))
            node = hop
    p = scenario.relay_power_mw
    return Relay(
        up_latency=float(dist[:, aggregator].max()),
        down_latency=float(dist[aggregator].max()),
        up_energy=float(p * dist[:, aggregator].sum()),
        down_energy=float(sum(p * latency[i, j] for i, j in tree_edges)),
    )


def relays(
    deployment: Deployment, links: Links, payload_kbit: float, scenario: Scenario
) -> np.ndarray:
    """float [S, K, 4]: Relay fields of every cluster for every choice of aggregator."""
    return np.asarray(
        [
            [
                tuple(relay(deployment.users[users], links.d2d[c], a, payload_kbit, scenario))
                for a in range(len(users))
            ]
            for c, users in enumerate(deployment.clusters)
        ]
    )


def cloud_latency(payload_kbit: float, scenario: Scenario = Scenario()) -> float:
    """Edge (or user) to cloud upload time (table_generator.py:107)."""
    return scenario.cloud_fixed_s + payload_kbit / scenario.cloud_rate_kbps


def star(links: Links, scenario: Scenario, payload_kbit: float) -> tuple[float, float]:
    """(latency s, energy J) per round, every user straight to the cloud (lines 119-120)."""
    cloud = cloud_latency(payload_kbit, scenario)
    users = len(links.uplink)
    return cloud, users * cloud * scenario.cloud_power_mw / 1000


def hierarchy(
    deployment: Deployment,
    links: Links,
    scenario: Scenario,
    payload_kbit: float,
    gaf: int,
    with_cloud_energy: bool = True,
) -> tuple[float, float]:
    """(latency s, energy J) per round: edge every round, cloud every gaf (lines 124-145).

    with_cloud_energy=False is the edge-only row (its latency keeps cloud / gaf).
    """
    up = payload_kbit / links.uplink[deployment.clusters]  # [S, K] seconds.
    cloud = cloud_latency(payload_kbit, scenario)
    latency = np.max((cloud + gaf * up.max(axis=1)) / gaf)
    cloud_energy = cloud * scenario.cloud_power_mw if with_cloud_energy else 0.0
    energy = np.sum((cloud_energy + gaf * up.sum(axis=1) * scenario.local_power_mw) / gaf)
    return float(latency), float(energy / 1000)


def d2d_terms(
    deployment: Deployment,
    links: Links,
    relay_costs: np.ndarray,
    scenario: Scenario,
    payload_kbit: float,
    gaf: int,
    with_cloud_energy: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, (latency s, energy mJ) per round with D2D in clusters (lines 247-277).

    Args:
      relay_costs: [..., S, 4] Relay fields of the clusters' aggregators (any
        leading axes: several choices at once).

    Returns:
      (latency [..., S], energy [..., S]); the round's are the max and the sum / 1000.
    """
    mean_up = np.mean(payload_kbit / links.uplink[deployment.clusters], axis=1)  # [S].
    cloud = cloud_latency(payload_kbit, scenario)
    ru, rd, eu, ed = np.moveaxis(relay_costs, -1, 0)
    latency = (cloud + (ru + rd) * (gaf - 1) + ru + mean_up) / gaf
    cloud_energy = cloud * scenario.cloud_power_mw if with_cloud_energy else 0.0
    energy = (cloud_energy + (eu + ed) * (gaf - 1) + eu + mean_up * scenario.local_power_mw) / gaf
    return latency, energy


README = {
    "star": (12.10, 387.20),
    "edge_only": (3.59, 59.25),
    "edge_only_d2d": (2.00, 14.75),
    "hffm_2": (9.58, 107.65),
    "hffm_8": (5.04, 71.35),
    "hffm_d2d_2": (8.86, 67.57),
    "hffm_d2d_8": (3.66, 27.92),
}
"""The README's latency (s) and energy column (J, labelled kJ there)."""

D2D_ROWS = ("edge_only_d2d", "hffm_d2d_2", "hffm_d2d_8")


def table(
    aggregators: np.ndarray | None = None,
    scenario: Scenario = Scenario(),
    payload_kbit: float | None = None,
) -> dict[str, tuple[float, float]]:
    """The README's rows from the model: {row: (latency s, energy J)}.

    Args:
      aggregators: int [S], each cluster's D2D aggregator (index in its cluster);
        None: the D2D rows are left out (they depend on HF-FM's unseeded choice).
      scenario: the constants.
      payload_kbit: what every message carries (None: the scenario's 6 MB).
    """
    payload = scenario.payload_kbit if payload_kbit is None else payload_kbit
    deployment, links = hffm_network(scenario)
    rows = {
        "star": star(links, scenario, payload),
        "edge_only": hierarchy(
            deployment, links, scenario, payload, scenario.edge_only_gaf, with_cloud_energy=False
        ),
        "hffm_2": hierarchy(deployment, links, scenario, payload, 2),
        "hffm_8": hierarchy(deployment, links, scenario, payload, 8),
    }
    if aggregators is not None:
        costs = relays(deployment, links, payload, scenario)
        chosen = costs[np.arange(len(costs)), np.asarray(aggregators)]
        for name, gaf, cloud in _D2D_SETTINGS(scenario):
            lat, energy = d2d_terms(deployment, links, chosen, scenario, payload, gaf, cloud)
            rows[name] = (float(lat.max()), float(energy.sum() / 1000))
    return rows


def _D2D_SETTINGS(scenario: Scenario) -> tuple:  # noqa: N802 - a constant of the scenario.
    """(row, gaf, cloud energy counted) of the D2D rows (lines 247-277)."""
    return (
        ("edge_only_d2d", scenario.edge_only_gaf, False),
        ("hffm_d2d_2", 2, True),
        ("hffm_d2d_8", 8, True),
    )


def d2d_distribution(scenario: Scenario = Scenario()) -> dict[str, np.ndarray]:
    """The D2D rows for every choice of aggregators, each equally likely.

    HF-FM draws each cluster's aggregator with Python's unseeded `random.choice`
    (table_generator.py:169): each of the K^S choices has probability K^-S.

    Returns:
      {row: float [K^S, 2] (latency s, energy J)} over all K^S choices, choice i
      being the base-K digits of i (cluster 0 the most significant), and
      'choices' int [K^S, S].
    """
    deployment, links = hffm_network(scenario)
    costs = relays(deployment, links, scenario.payload_kbit, scenario)  # [S, K, 4].
    s, k = costs.shape[:2]
    out = {"choices": np.stack(np.unravel_index(np.arange(k**s), (k,) * s), axis=1)}
    for name, gaf, cloud in _D2D_SETTINGS(scenario):
        per_choice = np.swapaxes(costs, 0, 1)  # [K, S, 4]: aggregator a in every cluster.
        lat, energy = d2d_terms(
            deployment, links, per_choice, scenario, scenario.payload_kbit, gaf, cloud
        )
        # [S, K] each, combined over clusters as outer max / sum (not [K^S, S] arrays).
        lat, energy = lat.T, energy.T
        total_lat, total_energy = lat[0], energy[0]
        for c in range(1, s):
            total_lat = np.maximum.outer(total_lat, lat[c]).ravel()
            total_energy = np.add.outer(total_energy, energy[c]).ravel()
        out[name] = np.stack([total_lat, total_energy / 1000], axis=1)
    return out


def truncated(x: np.ndarray | float, decimals: int = 2) -> np.ndarray:
    """x cut (not rounded) to `decimals`, as the README's numbers are (9.5872 -> 9.58)."""
    scale = 10**decimals
    return np.floor(np.asarray(x) * scale + 1e-9) / scale


def payload_kbit(num_bytes: float) -> float:
    """Bytes as the code's kbit (1 MB = 8000 kbit, table_generator.py:22)."""
    return float(num_bytes) * 8 / 1000


def timeline(
    deployment: Deployment,
    links: Links,
    scenario: Scenario,
    edge_kbit: np.ndarray,
    cloud_kbit: np.ndarray,
) -> tuple[float, float]:
    """(latency s, energy J) per round of a schedule, in HF-FM's hierarchy formulas.

    Round r: every user uploads edge_kbit[r] to its edge server (600 mW), then
    each edge server uploads cloud_kbit[r] to the cloud (800 mW, 0.1 s + kbit /
    4000; nothing when 0). A cluster's latency is the sum over rounds of its
    slowest user plus its cloud upload; the run's is the slowest cluster's,
    divided by the rounds. With the whole model every round at the edge and every
    gaf rounds at the cloud (over a multiple of gaf rounds) this is `hierarchy`;
    the edge-only row differs: there HF-FM keeps cloud / 200 in the latency.

    Args:
      deployment, links, scenario: the network.
      edge_kbit: [R] what each user sends its edge server in round r.
      cloud_kbit: [R] what each edge server sends the cloud in round r.
    """
    edge_kbit, cloud_kbit = np.asarray(edge_kbit, float), np.asarray(cloud_kbit, float)
    up = edge_kbit[:, None, None] / links.uplink[deployment.clusters][None]  # [R, S, K].
    cloud = np.where(
        cloud_kbit > 0, scenario.cloud_fixed_s + cloud_kbit / scenario.cloud_rate_kbps, 0.0
    )
    rounds = len(edge_kbit)
    latency = np.max(np.sum(up.max(axis=2) + cloud[:, None], axis=0)) / rounds
    per_round = up.sum(axis=2) * scenario.local_power_mw + cloud[:, None] * scenario.cloud_power_mw
    return float(latency), float(per_round.sum() / rounds / 1000)

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
"""Privacy accounting on dp-accounting (RDP and PLD), host side, pure Python/NumPy.

What is accounted, and with which dp-accounting event:

  * `dp_sgd_epsilon`: DP-SGD (Abadi et al. 2016, arXiv:1607.00133): a
    Poisson-subsampled Gaussian (`PoissonSampledDpEvent`, add-or-remove-one
    neighbours) composed `steps` times; RDP as in Mironov, Talwar and Zhang 2019
    (arXiv:1908.10530), or PLD.
  * `gaussian_epsilon`: the Gaussian mechanism without sampling composed `count`
    times (local DP of an institution over the rounds it took part in).
  * `CentralAccountant`: user-level DP-FedAvg (McMahan et al. 2018,
    arXiv:1710.06963) over rounds, with the event `round_event` that models how
    the engine (simulation/round.py) samples a cohort:
      - full participation (cohort == every client): no sampling, so a
        `GaussianDpEvent(z)`: the clipped sum has L2 sensitivity `clip` when one
        institution is added or removed (the denominator is a public constant);
        add-or-remove-one neighbours, RDP or PLD.
      - a fixed-size cohort drawn uniformly without replacement (one device):
        `SampledWithoutReplacementDpEvent(N, m, GaussianDpEvent(z / 2))`. The
        only analysis of fixed-size sampling in dp-accounting 0.6.0 (Wang, Balle
        and Kasiviswanathan 2019, arXiv:1808.00087, Theorem 27) is for
        replace-one neighbours (N is public), RDP only, and its multiplier is
        the noise std over the *replace-one* sensitivity, which is 2 x clip for a
        clipped sum (one institution's update swapped for another's moves the
        sum by up to 2 clip): hence z / 2.
      - sharded over D devices, the engine samples stratified: device d draws its
        share m_d of the cohort uniformly without replacement from its own block
        of n_d clients (ceil(N / D) a block, the last one shorter). Per block:
        replacing one institution changes only its block's sample; the other
        blocks' sums are independent of it, so the released noisy sum is a
        post-processing (a mixture, by joint convexity of the divergences) of
        that block's subsampled Gaussian. Each institution's guarantee is then
        its block's event, and we report the worst block's: the largest
        sampling ratio m_d / n_d (Theorem 27's bound depends on q = m / n only,
        and grows with q).
    Adaptive clipping (central.py) splits the same budget between the value
    noise and the noised unclipped count (Andrew et al. 2021, arXiv:1905.03871),
    so its rounds are accounted with the same z.

dp-accounting logs "failed to converge ... Excluding this order" when an RDP
order's series does not converge; that order is then ignored (epsilon is the
minimum over the others, still a valid bound). These warnings are silenced here
on purpose and surfaced as one INFO line, and as `CentralAccountant.dropped_orders`.
"""

import contextlib
import dataclasses
import logging
import math
import re
from collections.abc import Sequence

import dp_accounting as dpa
import numpy as np
from dp_accounting import pld as pld_lib
from dp_accounting import rdp as rdp_lib

ACCOUNTANTS = ("rdp", "pld")
NeighborRel = dpa.NeighboringRelation
# PLD's discretisation: pessimistic (a valid upper bound), and 1e-3 makes one more
# round about 0.15 s on CPU (1e-4, the library default, about 0.7 s) for eps
# within 1e-4 of the finer grid's (measured on a q=0.03, z=1, 100-round run).
PLD_DISCRETIZATION = 1e-3

_log = logging.getLogger(__name__)
_ALPHA = re.compile(r"alpha=([0-9]+(?:\.[0-9]+)?)")


class _DroppedOrders(logging.Filter):
    """Swallows dp-accounting's 'failed to converge' records, keeping their orders."""

    def __init__(self):
        super().__init__()
        self.orders: list[float] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "failed to converge" not in message:
            return True
        match = _ALPHA.search(message)
        if match:
            self.orders.append(float(match.group(1)))
        return False


@contextlib.contextmanager
def _dropped_orders():
    """Collects (and silences) the RDP orders dp-accounting excludes, then says so once."""
    dropped = _DroppedOrders()
    logger = logging.getLogger("absl")  # dp-accounting logs through absl.logging.
    logger.addFilter(dropped)
    try:
        yield dropped.orders
    finally:
        logger.removeFilter(dropped)
        if dropped.orders:
            _log.info(
                "dp-accounting excluded RDP orders %s (their series did not converge); "
                "epsilon is the minimum over the other orders.",
                sorted(set(dropped.orders)),
            )


def make_accountant(
    accountant: str = "rdp",
    neighboring_relation: NeighborRel = NeighborRel.ADD_OR_REMOVE_ONE,
    orders: Sequence[float] | None = None,
) -> dpa.PrivacyAccountant:
    """A fresh dp-accounting accountant: 'rdp' (optionally with orders) or 'pld'.

    Raises:
      ValueError: for an unknown accountant name.
    """
    if accountant == "rdp":
        return rdp_lib.RdpAccountant(orders, neighboring_relation)
    if accountant == "pld":
        return pld_lib.PLDAccountant(neighboring_relation, PLD_DISCRETIZATION)
    raise ValueError(f"Unknown accountant {accountant!r}; choose one of {ACCOUNTANTS}.")


def event_epsilon(
    event: dpa.DpEvent,
    *,
    delta: float,
    accountant: str = "rdp",
    neighboring_relation: NeighborRel = NeighborRel.ADD_OR_REMOVE_ONE,
    orders: Sequence[float] | None = None,
) -> float:
    """Epsilon at `delta` of one (composed) dp-accounting event, with a fresh accountant."""
    acc = make_accountant(accountant, neighboring_relation, orders)
    with _dropped_orders():
        acc.compose(event)
        return float(acc.get_epsilon(delta))


def dp_sgd_epsilon(
    noise_multiplier: float,
    *,
    sampling_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
    orders: Sequence[float] | None = None,
) -> float:
    """Epsilon of DP-SGD: a Poisson-subsampled Gaussian composed `steps` times.

    Student-level DP-SGD inside one institution: sampling_rate = batch / its
    students, steps = local steps per round x the rounds it took part in.

    >>> round(dp_sgd_epsilon(1.3, sampling_rate=150 / 60000, steps=6000, delta=1e-5), 6)
    0.724223

    Args:
      noise_multiplier: noise std over the per-example clip (>= 0; 0 gives inf).
      sampling_rate: Poisson sampling probability q in [0, 1] (1: every step sees all).
      steps: compositions (>= 0; 0 gives 0).
      delta: target delta.
      accountant: 'rdp' or 'pld'.
      orders: RDP orders (None: dp-accounting's defaults).

    Returns:
      Epsilon at delta (add-or-remove-one neighbours).
    """
    if steps == 0 or sampling_rate == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    gaussian = dpa.GaussianDpEvent(noise_multiplier)
    one = gaussian if sampling_rate == 1 else dpa.PoissonSampledDpEvent(sampling_rate, gaussian)
    return event_epsilon(
        dpa.SelfComposedDpEvent(one, steps), delta=delta, accountant=accountant, orders=orders
    )


def gaussian_epsilon(
    noise_multiplier: float, *, count: int, delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon of the Gaussian mechanism (no sampling) composed `count` times.

    >>> round(gaussian_epsilon(1.0, count=1, delta=1e-5, accountant='pld'), 2)
    4.38

    Args:
      noise_multiplier: noise std over the L2 sensitivity (0 gives inf).
      count: compositions (>= 0; 0 gives 0).
      delta: target delta.
      accountant: 'rdp' or 'pld'.
    """
    if count == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    event = dpa.SelfComposedDpEvent(dpa.GaussianDpEvent(noise_multiplier), count)
    return event_epsilon(event, delta=delta, accountant=accountant)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sampling:
    """How the engine draws a cohort (simulation/round.py, build_round).

    Attributes:
      num_clients: institutions in the federation (N; all assumed eligible).
      cohort_size: clients per round (m; == N is full participation).
      num_devices: devices the cohort is sharded over (D; stratified when > 1).
    """

    num_clients: int
    cohort_size: int
    num_devices: int = 1

    def __post_init__(self):
        if not 1 <= self.cohort_size <= self.num_clients or self.num_devices < 1:
            raise ValueError(
                f"Need 1 <= cohort_size ({self.cohort_size}) <= num_clients "
                f"({self.num_clients}) and num_devices >= 1 ({self.num_devices})."
            )

    @property
    def full(self) -> bool:
        return self.cohort_size == self.num_clients

    def blocks(self) -> list[tuple[int, int]]:
        """(clients n_d, sampled m_d) per device, exactly as round.local_slots draws them."""
        n, m, d = self.num_clients, self.cohort_size, self.num_devices
        block = -(-n // d)
        out = []
        for device in range(d):
            held = min(max(n - device * block, 0), block)
            share = m // d + (device < m % d)
            out.append((held, min(share, held)))
        return out

    def worst_block(self) -> tuple[int, int]:
        """The (n_d, m_d) with the largest sampling ratio m_d / n_d."""
        return max((b for b in self.blocks() if b[0] > 0), key=lambda b: b[1] / b[0])


def round_event(noise_multiplier: float, sampling: Sampling) -> tuple[dpa.DpEvent, NeighborRel]:
    """The dp-accounting event of one DP-FedAvg round, and its neighbouring relation.

    See the module docstring for why each event models the engine's sampler.

    Args:
      noise_multiplier: z, the server noise std over the per-institution clip.
      sampling: how the engine draws the cohort.

    Returns:
      (event, relation): GaussianDpEvent(z) with ADD_OR_REMOVE_ONE for full
      participation; otherwise SampledWithoutReplacementDpEvent(n_d, m_d,
      GaussianDpEvent(z / 2)) of the worst block with REPLACE_ONE.
    """
    if sampling.full:
        return dpa.GaussianDpEvent(noise_multiplier), NeighborRel.ADD_OR_REMOVE_ONE
    held, sampled = sampling.worst_block()
    gaussian = dpa.GaussianDpEvent(noise_multiplier / 2)  # Replace-one sensitivity: 2 clip.
    if sampled == held:  # A block sampled whole: no amplification there.
        return gaussian, NeighborRel.REPLACE_ONE
    return dpa.SampledWithoutReplacementDpEvent(held, sampled, gaussian), NeighborRel.REPLACE_ONE


def _check_supported(accountant: str, sampling: Sampling) -> None:
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"Unknown accountant {accountant!r}; choose one of {ACCOUNTANTS}.")
    if accountant == "pld" and not sampling.full:
        raise ValueError(
            "The PLD accountant of dp-accounting 0.6.0 has no fixed-size (without "
            "replacement) sampling, which is how the engine samples a partial cohort: "
            "use the RDP accountant, or full participation (cohort_size = num_clients)."
        )


class CentralAccountant:
    """Epsilon of user-level DP-FedAvg after r rounds (cheap to ask every round).

    RDP: the one-round RDP curve is computed once and scaled by r. PLD: rounds are
    composed incrementally (about 0.15 s a round on CPU), and earlier answers cached.

    >>> acc = CentralAccountant(1.0, sampling=Sampling(num_clients=100, cohort_size=10),
    ...                         delta=1e-5)
    >>> acc.epsilon(0), acc.epsilon(10) < acc.epsilon(20)
    (0.0, True)

    Attributes:
      noise_multiplier, sampling, delta, accountant: as given.
      event, neighboring_relation: one round's event (`round_event`).
      dropped_orders: RDP orders dp-accounting excluded (did not converge).
    """

    def __init__(
        self,
        noise_multiplier: float,
        *,
        sampling: Sampling,
        delta: float,
        accountant: str = "rdp",
    ):
        _check_supported(accountant, sampling)
        self.noise_multiplier = noise_multiplier
        self.sampling = sampling
        self.delta = delta
        self.accountant = accountant
        self.event, self.neighboring_relation = round_event(noise_multiplier, sampling)
        self.dropped_orders: list[float] = []
        self._cache = {0: 0.0}
        self._pld = None
        self._pld_rounds = 0
        if noise_multiplier > 0 and accountant == "rdp":
            acc = rdp_lib.RdpAccountant(None, self.neighboring_relation)
            with _dropped_orders() as dropped:
                acc.compose(self.event)
            self.dropped_orders = sorted(set(dropped))
            self._orders, self._rdp = np.asarray(acc.orders), np.asarray(acc.rdp)

    def epsilon(self, rounds: int) -> float:
        """Epsilon at `delta` after `rounds` rounds (0 rounds: 0; z = 0: inf)."""
        if rounds in self._cache:
            return self._cache[rounds]
        if self.noise_multiplier == 0:
            return math.inf
        if self.accountant == "rdp":
            eps = float(rdp_lib.compute_epsilon(self._orders, rounds * self._rdp, self.delta)[0])
        else:
            if self._pld is None or rounds < self._pld_rounds:
                self._pld = make_accountant("pld", self.neighboring_relation)
                self._pld_rounds = 0
            self._pld.compose(self.event, rounds - self._pld_rounds)
            self._pld_rounds = rounds
            eps = float(self._pld.get_epsilon(self.delta))
        self._cache[rounds] = eps
        return eps

    def max_rounds(self, budget: float, limit: int) -> int:
        """The most rounds (<= limit) whose epsilon is at most `budget` (binary search)."""
        lo, hi = 0, limit
        if self.epsilon(limit) <= budget:
            return limit
        while hi - lo > 1:  # Invariant: eps(lo) <= budget < eps(hi).
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.epsilon(mid) <= budget else (lo, mid)
        return lo


def calibrate_noise(
    target_epsilon: float,
    *,
    delta: float,
    rounds: int,
    sampling: Sampling,
    accountant: str = "rdp",
    tol: float = 1e-4,
) -> float:
    """The smallest noise multiplier z whose DP-FedAvg run has epsilon <= target.

    `dp_accounting.calibrate_dp_mechanism` over `round_event(z, sampling)` composed
    `rounds` times (what `CentralAccountant` then reports).

    Args:
      target_epsilon: epsilon to spend over the whole run, at `delta`.
      delta: target delta.
      rounds: rounds of the run.
      sampling: how the engine draws the cohort.
      accountant: 'rdp' or 'pld'.
      tol: tolerance on z.

    Returns:
      z, within tol of the optimum and meeting the target.

    Raises:
      ValueError: for an unsupported accountant / sampling pair.
    """
    _check_supported(accountant, sampling)
    relation = round_event(1.0, sampling)[1]
    # PLD's grid explodes for tiny multipliers (150 GiB at 1e-3); below 0.1 no useful
    # budget is met anyway.
    lower = 0.1 if accountant == "pld" else 1e-3
    with _dropped_orders():
        z = dpa.calibrate_dp_mechanism(
            lambda: make_accountant(accountant, relation),
            lambda z: dpa.SelfComposedDpEvent(round_event(z, sampling)[0], rounds),
            target_epsilon,
            delta,
            bracket_interval=dpa.LowerEndpointAndGuess(lower, 1.0),
            tol=tol,
        )
    return float(z)  # calibrate_dp_mechanism checks that its answer meets the target.


def calibrate_cohort_size(
    target_epsilon: float,
    *,
    delta: float,
    rounds: int,
    num_clients: int,
    noise_per_client: float,
    accountant: str = "rdp",
    poisson: bool = True,
) -> tuple[int, float]:
    """The fewest clients per round m, with z = noise_per_client * m, within the target.

    TFF's DP tutorial logic: keeping the noise std on the *mean* fixed (z / m
    constant) while growing the cohort buys privacy through the sampling rate.
    `poisson=True` accounts the cohort as Poisson sampling with q = m / N (as TFF
    does); False uses the engine's fixed-size sampling on one device (`round_event`).

    Returns:
      (m, z).
    """

    def event(m):
        m = min(m, num_clients)  # The bracket search may try more than there are.
        z = noise_per_client * m
        if poisson:
            return dpa.PoissonSampledDpEvent(m / num_clients, dpa.GaussianDpEvent(z))
        return round_event(z, Sampling(num_clients=num_clients, cohort_size=m))[0]

    relation = NeighborRel.ADD_OR_REMOVE_ONE if poisson else NeighborRel.REPLACE_ONE
    with _dropped_orders():
        m = dpa.calibrate_dp_mechanism(
            lambda: make_accountant(accountant, relation),
            lambda m: dpa.SelfComposedDpEvent(event(m), rounds),
            target_epsilon,
            delta,
            bracket_interval=dpa.LowerEndpointAndGuess(1, max(1, num_clients // 100)),
            discrete=True,
        )
    return int(m), noise_per_client * int(m)

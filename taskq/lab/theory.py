"""Textbook predictions to set beside measured and simulated waits. All waits are the
mean time in the queue before service (W_q), in seconds; rates are per second.

Sources (formulas written from these, not from code):

* L. Kleinrock, *Queueing Systems, Vol. 1: Theory* (Wiley, 1975): M/M/1 (§3.2), M/M/c and
  Erlang's C formula (§3.5), the Pollaczek-Khinchine mean-value formula for M/G/1 (§5.6).
* A. Cobham, "Priority assignment in waiting line problems", *Operations Research* 2(1),
  1954, pp. 70-76: non-preemptive priorities, M/G/1 and M/M/c with equal service rates;
  also Kleinrock, *Queueing Systems, Vol. 2* (1976), §3.6.
* D. Gross, C. M. Harris, *Fundamentals of Queueing Theory* (Wiley): the M/M/c waiting-time
  distribution ``P(W_q > t) = C(c, a) exp(-(c mu - lambda) t)``.

Every function returns ``math.inf`` for an unstable system (utilisation >= 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from taskq.lab.model import Config, Exponential, LabError, Poisson, Workload


def _check(lam: float, mean_s: float, servers: int = 1) -> None:
    if not (lam > 0 and math.isfinite(lam)) or not (mean_s > 0 and math.isfinite(mean_s)):
        raise LabError(f"rates and mean service times must be finite and > 0, got {lam}, {mean_s}")
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 1:
        raise LabError(f"servers must be an integer >= 1, got {servers!r}")


def erlang_c(servers: int, offered_load: float) -> float:
    """Erlang's C formula: the probability that an arrival waits in an M/M/c queue with
    ``servers`` servers and offered load ``a = lambda / mu`` (Kleinrock Vol. 1, eq. 3.40).
    Computed through the Erlang B recursion ``B(k) = a B(k-1) / (k + a B(k-1))`` and
    ``C = B / (1 - rho (1 - B))``, which stays finite for large c (no a^c / c!)."""
    _check(1.0, offered_load, servers)
    rho = offered_load / servers
    if rho >= 1:
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    return b / (1 - rho * (1 - b))


def mm1_wait_s(lam: float, mean_s: float) -> float:
    """M/M/1: ``W_q = rho / (mu - lambda)`` with ``rho = lambda / mu``."""
    return mmc_wait_s(lam, mean_s, 1)


def mmc_wait_s(lam: float, mean_s: float, servers: int) -> float:
    """M/M/c: ``W_q = C(c, a) / (c mu - lambda)`` (Kleinrock Vol. 1, eq. 3.43)."""
    _check(lam, mean_s, servers)
    mu = 1 / mean_s
    if lam >= servers * mu:
        return math.inf
    return erlang_c(servers, lam * mean_s) / (servers * mu - lam)


def mmc_wait_quantile_s(q: float, lam: float, mean_s: float, servers: int) -> float:
    """The q-quantile of the M/M/c queueing delay, from ``P(W_q > t) = C e^{-(c mu - lambda) t}``:
    0 when an arrival waits with probability at most ``1 - q``."""
    _check(lam, mean_s, servers)
    if not 0 < q < 1:
        raise LabError(f"q must be in (0, 1), got {q}")
    mu = 1 / mean_s
    if lam >= servers * mu:
        return math.inf
    waits = erlang_c(servers, lam * mean_s)
    return 0.0 if waits <= 1 - q else math.log(waits / (1 - q)) / (servers * mu - lam)


def mg1_wait_s(lam: float, mean_s: float, second_moment: float) -> float:
    """M/G/1, the Pollaczek-Khinchine formula: ``W_q = lambda E[S^2] / (2 (1 - rho))``
    (Kleinrock Vol. 1, eq. 5.76); ``second_moment`` is E[S^2] in s^2."""
    _check(lam, mean_s)
    rho = lam * mean_s
    return math.inf if rho >= 1 else lam * second_moment / (2 * (1 - rho))


def cobham_waits_s(classes: Mapping[int, tuple[float, float, float]]) -> dict[int, float]:
    """Non-preemptive priority M/G/1 (Cobham 1954; Kleinrock Vol. 2, eq. 3.30): per class
    ``W_k = W_0 / ((1 - sigma_{k-1}) (1 - sigma_k))`` with ``W_0 = sum_i lambda_i E[S_i^2] / 2``
    and ``sigma_k`` the utilisation of classes k and more urgent. ``classes``: priority
    (higher is served first, as in taskq) -> (rate, mean service s, E[S^2]). Returns
    priority -> mean wait (inf for a class the server cannot keep up with)."""
    if not classes:
        raise LabError("cobham_waits_s: no classes")
    for lam, mean_s, second in classes.values():
        _check(lam, mean_s)
        if not second >= mean_s**2:
            raise LabError(f"E[S^2] must be >= E[S]^2, got {second} < {mean_s**2}")
    w0 = sum(lam * second / 2 for lam, _, second in classes.values())
    out, above = {}, 0.0
    for priority in sorted(classes, reverse=True):
        lam, mean_s, _ = classes[priority]
        below = above + lam * mean_s
        out[priority] = math.inf if below >= 1 else w0 / ((1 - above) * (1 - below))
        above = below
    return out


def mmc_priority_waits_s(rates_per_s: Mapping[int, float], mean_s: float, servers: int) -> dict[int, float]:
    """Non-preemptive priority M/M/c, every class with the same exponential service (Cobham
    1954): ``W_k = C(c, a) / (c mu (1 - sigma_{k-1}) (1 - sigma_k))``, with ``a`` the total
    offered load and ``sigma_k = sum of lambda_i / (c mu)`` over classes k and more urgent."""
    if not rates_per_s:
        raise LabError("mmc_priority_waits_s: no classes")
    total = sum(rates_per_s.values())
    _check(total, mean_s, servers)
    capacity = servers / mean_s
    if total >= capacity:
        return dict.fromkeys(rates_per_s, math.inf)
    w0 = erlang_c(servers, total * mean_s) / capacity
    out, above = {}, 0.0
    for priority in sorted(rates_per_s, reverse=True):
        below = above + rates_per_s[priority] / capacity
        out[priority] = w0 / ((1 - above) * (1 - below))
        above = below
    return out


def predict_waits_s(workload: Workload, config: Config) -> dict[int, float] | None:
    """The mean queueing delay per priority that theory gives for ``workload`` under
    ``config``, where a formula holds: Poisson arrivals, no failures, one queue, strict
    priority (no aging), and either one slot (M/G/1, Cobham) or exponential service
    (M/M/c, Cobham's multi-server form). None otherwise. Slots are workers x concurrency;
    the worker's refill rule (it claims once a quarter of its slots are free) departs from
    M/M/c for concurrency >= 8 in one worker, so that case gives None too."""
    if not isinstance(workload.arrivals, Poisson) or workload.failure_p > 0 or len(workload.queues) != 1:
        return None
    if config.aging_s is not None or config.concurrency >= 8:
        return None
    lam = workload.rate_per_s
    rates = {p: lam * share for p, share in workload.priorities.items()}
    service = workload.service
    if config.slots == 1:
        return cobham_waits_s({p: (r, service.mean_s, service.second_moment) for p, r in rates.items()})
    if isinstance(service, Exponential):
        return mmc_priority_waits_s(rates, service.mean_s, config.slots)
    return None

"""Reading live signals: poll with a deadline, and read Prometheus exposition.

Tests, the status command and the benchmarks use these instead of sleeping and parsing
text by hand. https://prometheus.github.io/client_python/
"""

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def eventually(probe: Callable[[], T], what: str, timeout: float = 15.0) -> T:
    """Call ``probe`` until it returns something truthy, and return that; after ``timeout``
    seconds fail, saying ``what`` we waited for and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout:.0f}s still waiting for {what}; last: {value!r}")
        time.sleep(0.05)


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` at ``url`` whose labels include ``labels``
    (0 when there are none yet: a counter that has not moved is not exposed)."""
    return _sum(url, [name], labels, timeout=5.0)


def metrics(url: str, names: Iterable[str], timeout: float) -> float:
    """The sum of every sample called one of ``names`` at ``url``, from one scrape."""
    return _sum(url, names, {}, timeout)


def _sum(url: str, names: Iterable[str], labels: Mapping[str, str], timeout: float) -> float:
    text = httpx.get(url, timeout=timeout).raise_for_status().text
    # The parser follows OpenMetrics and names every counter sample ``*_total``, even where
    # the exposition (as Prometheus stores it) does not, e.g. dapr_component_pubsub_egress_count.
    wanted = {variant for name in names for variant in (name, f"{name}_total")}
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted and labels.items() <= sample.labels.items()
    )

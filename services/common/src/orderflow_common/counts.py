"""Counts per id kept in memory, for what a demo or a test reads back about the latest
requests (charge attempts per order, deliveries per event), bounded so that a process
that runs for days does not keep an entry for every order it ever saw."""

# At 100 orders/s, the ids of the last 100 s: far longer than any retry or redelivery
# takes, and a few MiB at most.
RECENT_IDS = 10_000


class RecentCounts:
    """How often each of the most recent ``limit`` ids was seen; the id seen first is
    forgotten first."""

    def __init__(self, limit: int = RECENT_IDS) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def add(self, key: str) -> int:
        """Count ``key`` once more and return its count."""
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if len(self._counts) > self.limit:
            del self._counts[next(iter(self._counts))]
        return count

    def get(self, key: str) -> int:
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        return len(self._counts)

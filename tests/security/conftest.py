"""What the security tests share: the running stack's Redis, read whole, to compare
before and after each refused probe (a refusal must leave every key and value as it
was). The stack itself is tests/conftest.py's, one per module."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from orderflow_devtools.stack import LocalStack

Snapshot = dict[str, tuple[str, Any]]


@pytest.fixture(scope="module")
def redis_state(local_stack: LocalStack) -> Iterator[Callable[[], Snapshot]]:
    """Every key with its type and whole value, each time it is called."""
    store = redis.Redis(port=local_stack.redis_port, decode_responses=True)
    readers: dict[str, Callable[[str], Any]] = {
        "string": store.get,
        "hash": store.hgetall,
        "list": lambda key: store.lrange(key, 0, -1),
        "set": lambda key: sorted(store.smembers(key)),
        "zset": lambda key: store.zrange(key, 0, -1, withscores=True),
        "stream": store.xrange,
    }

    def read() -> Snapshot:
        return {
            key: (kind, readers[kind](key))
            for key in sorted(store.scan_iter())
            if (kind := store.type(key)) in readers
        }

    yield read
    store.close()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client

"""Fixtures for the tests that run real components: the pinned tools, and the local stack
(Redis, Jaeger, Prometheus, every app with its real daprd) on loopback, one per module."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow_devtools.client import Shop
from orderflow_devtools.stack import LocalStack
from orderflow_devtools.tools import Tools, ensure_all, ensure_kustomize

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tools() -> Tools:
    return ensure_all(lambda _message: None)


@pytest.fixture(scope="session")
def kustomize() -> Path:
    """The pinned kustomize (the manifest checks render with it; the Kubernetes tests
    write the throwaway kustomizations it builds)."""
    return ensure_kustomize(lambda _message: None)


@pytest.fixture(scope="module")
def stack_secrets_dir() -> Path | None:
    """Where the stack keeps its tokens: its own run directory unless a suite says."""
    return None


@pytest.fixture(scope="module")
def local_stack(
    tools: Tools, tmp_path_factory: pytest.TempPathFactory, stack_secrets_dir: Path | None
) -> Iterator[LocalStack]:
    run_dir = tmp_path_factory.mktemp("stack")
    with (run_dir / "stack.log").open("w") as log:
        local = LocalStack(REPO / "dapr.yaml", run_dir, tools, log, stack_secrets_dir)
        try:
            local.start(timeout=60)
            yield local
        finally:
            local.stop()


@pytest.fixture(scope="module")
def shop(local_stack: LocalStack) -> Iterator[Shop]:
    client = Shop(local_stack.endpoints())
    yield client
    client.close()

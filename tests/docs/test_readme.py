"""The README's walk-through runs as written, against the real stack: it begins "once
`make up` says all 14 processes healthy", so the stack is there before it starts."""

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from orderflow_devtools import docs

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.usefixtures("local_stack")
def test_readme_walk_through_runs_as_written(
    run_markdown: Callable[[Path, Sequence[str]], docs.Outcome],
) -> None:
    assert [step.name for step in docs.steps(README)] == ["place an order", "fault flags"]
    run_markdown(README, ())

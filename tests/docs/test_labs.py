"""Each lab in docs/labs runs as written, against the real stack that it starts itself
(``make up`` as a background step) and stops again (its reset)."""

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from orderflow_devtools import docs

REPO = Path(__file__).resolve().parents[2]
LABS = sorted((REPO / "docs" / "labs").glob("[0-9][0-9]-*.md"))
# Lab 2 edits the first, lab 3 removes and edits the second, lab 4 removes the third;
# their resets put the committed files back with git.
EDITED_BY_LABS = (
    "deploy/dapr/config.yaml",
    "deploy/dapr/resiliency.yaml",
    "deploy/base/service/autoscaled/hpa.yaml",
)


def test_there_are_labs() -> None:
    assert [lab.name for lab in LABS][:5] == [
        "01-monitoring.md",
        "02-dapr-observability.md",
        "03-resiliency.md",
        "04-autoscaling.md",
        "05-load-and-chaos.md",
    ]


@pytest.mark.parametrize("lab", LABS, ids=lambda path: path.stem)
def test_every_command_block_is_a_named_step(lab: Path) -> None:
    steps = docs.steps(lab)
    assert sum(len(step.commands) for step in steps) == docs.command_blocks(lab.read_text())
    assert all(step.name for step in steps)


@pytest.mark.integration
@pytest.mark.usefixtures("tools")
@pytest.mark.parametrize("lab", LABS, ids=lambda path: path.stem)
def test_lab_runs_as_written(
    lab: Path, run_markdown: Callable[[Path, Sequence[str]], docs.Outcome]
) -> None:
    run_markdown(lab, EDITED_BY_LABS)

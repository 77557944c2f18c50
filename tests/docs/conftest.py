"""The documentation's steps, run against the real stack (orderflow_devtools.docs)."""

import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from orderflow_devtools import docs
from orderflow_devtools.tools import ensure_debian

REPO = Path(__file__).resolve().parents[2]

# The document, and the files it edits and puts back with git (a change of one's own to
# one of them would be lost, so the run refuses to start over one).
RunMarkdown = Callable[[Path, Sequence[str]], docs.Outcome]


def git(*args: str) -> str:
    """git from PATH, as a reader's shell runs it."""
    command = ["git", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def stack_secrets_dir() -> Path:
    """The README's steps read the tokens where `make up` keeps them, .run/secrets (and
    `make fault` does), so the stack they run against keeps them there too."""
    return REPO / ".run"


@pytest.fixture
def run_markdown(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunMarkdown]:
    """Run a document from the repository root and fail with mechanical-markdown's report
    of the first step whose exit code or output differs from what the document says;
    afterwards the working tree must be as it was (each reset puts back what it changed)."""
    ensure_debian("jq", "jq", lambda _message: None)  # the steps read JSON with jq
    monkeypatch.chdir(REPO)
    before = git("status", "--porcelain")

    def run(path: Path, edits: Sequence[str] = ()) -> docs.Outcome:
        assert not (REPO / ".run" / "orderflow.pid").exists(), "a stack runs here: make down"
        if edits:
            changed = git("diff", "--name-only", "--", *edits)
            assert not changed, f"uncommitted changes to {changed.split()}: commit or stash"
        outcome = docs.run(path, REPO)
        assert outcome.ok, f"{path.relative_to(REPO)}:\n{outcome.report}"
        return outcome

    yield run
    assert git("status", "--porcelain") == before

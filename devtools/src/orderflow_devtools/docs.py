"""Executable documentation: the steps a reader types in README.md and docs/labs/*.md,
run from the markdown itself with mechanical-markdown (as Dapr's quickstarts are), each
step's exit code and expected output checked.

mechanical-markdown runs the ```bash blocks that sit between ``<!-- STEP -->`` and
``<!-- END_STEP -->`` comments, each block in its own shell, and matches the lines the
STEP lists under ``expected_stdout_lines`` / ``expected_stderr_lines``
(https://github.com/dapr/mechanical-markdown). This runner adds two things it lacks:

- a step tagged ``eventually`` is run again until its output matches, for at most
  ``EVENTUALLY_SECONDS``: what a reader does by looking again a moment later (a scrape,
  a span batch, an event on its way). Such a step must be safe to repeat;
- the first failing step ends the run at once, with its report; then the document's
  last step tagged ``reset`` runs (its output unchecked), so that what the document
  changed is put back, and whatever happens a stack the document started is stopped
  (``orderflow down``) before its background steps are waited for: a failing step
  leaves no process behind.
"""

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mechanical_markdown import MechanicalMarkdown
from mechanical_markdown.command import Command

EVENTUALLY = "eventually"
RESET = "reset"
EVENTUALLY_SECONDS = 60.0
# Each block in a strict shell: a failing command anywhere in a block fails its step.
SHELL = "bash -e -o pipefail -c"
# The code blocks mechanical-markdown runs (parsers.RecipeParser.block_code).
_COMMAND_BLOCK = re.compile(r"^```(?:bash|sh|shell|shell-script)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    report: str
    """mechanical-markdown's report of every step that ran: commands, exit codes, output."""


def command_blocks(markdown: str) -> int:
    """How many command blocks a reader sees, in steps or not."""
    return len(_COMMAND_BLOCK.findall(markdown))


def steps(path: Path) -> list[Any]:
    """The document's steps in order (mechanical_markdown.step.Step; it has no types)."""
    return list(MechanicalMarkdown(path.read_text(), shell=SHELL).all_steps)


def run(path: Path, repo: Path) -> Outcome:
    """Run ``path``'s steps from ``repo`` (the working directory each step gets is the one
    current when the document is parsed, so call this from ``repo``)."""
    recipe = steps(path)
    ran: list[Any] = []
    failure = ""
    try:
        for step in recipe:
            ran.append(step)
            ok, report = _run_step(step)
            if not ok:
                failure = report
                break
    finally:
        resets = [step for step in recipe if RESET in step.tags and not step.background]
        if failure and resets:
            _renew(resets[-1])
            resets[-1].run_all_commands(False)
        # A document's last step stops the stack it started; after a failure, do it here.
        subprocess.run(
            [sys.executable, "-m", "orderflow_devtools", "down"],
            cwd=repo,
            capture_output=True,
            check=False,
        )
        for step in ran:
            if step.background:
                step.wait_for_all_background_commands()
    reports = []
    for step in ran:
        ok, report = step.validate_and_report()
        reports.append(report)
        if step.background and not ok and not failure:
            failure = report
    return Outcome(not failure, failure or "".join(reports))


def _run_step(step: Any) -> tuple[bool, str]:
    deadline = time.monotonic() + EVENTUALLY_SECONDS
    while True:
        ran = bool(step.run_all_commands(False))
        if step.background:
            return ran, ""
        ok, report = step.validate_and_report()
        if (ran and ok) or EVENTUALLY not in step.tags or time.monotonic() > deadline:
            return ran and ok, str(report)
        time.sleep(1.0)
        _renew(step)


def _renew(step: Any) -> None:
    """A command is a thread, and a thread runs once: another run needs fresh ones."""
    step.commands = [Command(c.command, c.cwd, c.env, c.shell, c.timeout) for c in step.commands]

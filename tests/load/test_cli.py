"""``orderflow-load`` refuses a run that cannot work before Locust starts: exit 2 and one
line saying why. No stack needed."""

import socket
import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderflow_loadtest", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unknown_scenario_names_the_known_ones() -> None:
    run = _run("stedy")

    assert run.returncode == 2
    assert run.stderr == (
        "orderflow-load: unknown scenario 'stedy'; "
        "choose one of smoke, steady, step, spike, soak, chaos, chaos-short\n"
    )
    assert run.stdout == ""


def test_unreachable_target_fails_at_once() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    run = _run("steady", "--host", url)

    assert run.returncode == 2
    assert run.stderr.startswith(f"orderflow-load: storefront is not answering at {url}/healthz (")
    assert run.stderr.endswith("): start the stack with `make up`\n")
    assert run.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (["steady", "--cpu", "x"], "argument --cpu: invalid int value: 'x'"),
        (["steady", "--users", "5"], "unrecognized arguments: --users 5"),
        ([], "the following arguments are required: scenario"),
    ],
)
def test_bad_option_is_one_line(args: list[str], cause: str) -> None:
    run = _run(*args)

    assert run.returncode == 2
    assert run.stderr == f"orderflow-load: {cause} (see --help)\n"

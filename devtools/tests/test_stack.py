"""The launcher's supervision, on real processes: what dies is started again with a
growing backoff and the log says so; what the stack stops or kills stays down."""

import io
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow_devtools.observe import eventually
from orderflow_devtools.stack import Process, Stack, Supervision

QUICK = Supervision(first=0.1, most=0.4, stable=60.0, liveness_period=0.2)


def python(name: str, code: str, cwd: Path) -> Process:
    return Process(
        name=name, argv=[sys.executable, "-c", code], cwd=cwd, ready=lambda: True, ports={}
    )


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def stack(tmp_path: Path, log: io.StringIO) -> Iterator[Stack]:
    processes = [
        python("sleeper", "import time; print('up', flush=True); time.sleep(600)", tmp_path),
        python("crasher", "raise SystemExit(3)", tmp_path),
    ]
    running = Stack(processes, log)
    yield running
    running.stop()


def lines(log: io.StringIO, name: str) -> list[str]:
    said = log.getvalue().splitlines()
    return [line.split(" | ", 1)[1] for line in said if line.startswith(name)]


def test_a_killed_process_is_started_again_and_the_log_says_so(
    stack: Stack, log: io.StringIO
) -> None:
    stack.start(["sleeper"])
    stack.supervise(QUICK)
    first = stack.pids()["sleeper"]
    eventually(lambda: lines(log, "sleeper") == ["up"], "the sleeper's output")

    os.kill(first, signal.SIGKILL)

    eventually(lambda: len(lines(log, "sleeper")) == 5, "the new sleeper, healthy")
    assert stack.restarts("sleeper") == 1
    said = lines(log, "sleeper")
    assert said[0] == "up"
    assert said[1].startswith("orderflow: exited with code -9 after ")
    assert said[1].endswith("s; restarting it in 0.1s (attempt 1)")
    assert said[2] == f"orderflow: restarted (pid {stack.pids()['sleeper']})"
    # Its own output and the supervisor's health check race each other.
    rest = said[3:]
    assert rest.count("up") == 1
    (healthy,) = (line for line in rest if line != "up")
    assert re.fullmatch(r"orderflow: healthy again \d+\.\ds after it died", healthy)


def test_a_crash_loop_backs_off_doubling_up_to_the_ceiling(stack: Stack, log: io.StringIO) -> None:
    stack.start(["crasher"])
    stack.supervise(QUICK)

    eventually(lambda: stack.restarts("crasher") >= 5, "five restarts")
    stack.stop()

    delays = [
        line.rsplit(" restarting it in ", 1)[1]
        for line in lines(log, "crasher")
        if "restarting it in" in line
    ]
    assert delays[:5] == [
        "0.1s (attempt 1)",
        "0.2s (attempt 2)",
        "0.4s (attempt 3)",
        "0.4s (attempt 4)",
        "0.4s (attempt 5)",
    ]


def test_what_the_stack_stops_or_kills_stays_down(stack: Stack) -> None:
    stack.start(["sleeper"])
    stack.supervise(QUICK)
    stack.kill("sleeper")
    stack.start(["sleeper"])
    stack.stop(["sleeper"])

    # Several supervisor rounds (one each 0.2 s): nothing comes back.
    with pytest.raises(TimeoutError):
        eventually(lambda: "sleeper" in stack.pids(), "a restart that must not happen", 1.0)
    assert stack.restarts("sleeper") == 0


def test_a_process_that_fails_its_liveness_probe_is_killed_and_restarted(
    tmp_path: Path, log: io.StringIO
) -> None:
    stuck: set[int] = set()
    process = python("stuck", "import time; time.sleep(600)", tmp_path)
    process.alive = lambda pid: pid not in stuck
    stack = Stack([process], log)
    stack.start(["stuck"])
    stack.supervise(QUICK)
    first = stack.pids()["stuck"]

    stuck.add(first)
    eventually(lambda: stack.pids().get("stuck", first) != first, "a new process")
    stack.stop()

    said = lines(log, "stuck")
    assert said[:4] == [
        "orderflow: liveness check failed (1 of 3)",
        "orderflow: liveness check failed (2 of 3)",
        "orderflow: liveness check failed (3 of 3)",
        "orderflow: not live: killing it, to be restarted",
    ]
    assert said[4].startswith("orderflow: exited with code -9 after ")
    assert stack.restarts("stuck") == 1

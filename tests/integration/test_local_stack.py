"""`orderflow up` as a user runs it: it becomes healthy, prefixes every line with its
process's name, stops cleanly on SIGTERM with nothing left behind, and refuses to start,
with one line and a non-zero exit, when a port is taken or a resource file is broken."""

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psutil
import pytest
import yaml

from orderflow_devtools import tokens
from orderflow_devtools.observe import eventually
from orderflow_devtools.tools import DAPR_VERSION, Tools, daprd_version

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UP = [sys.executable, "-m", "orderflow_devtools", "up"]
FAULT = [sys.executable, "-m", "orderflow_devtools", "fault"]


def test_daprd_is_the_pinned_release_not_edge(tools: Tools) -> None:
    assert daprd_version(tools.daprd) == DAPR_VERSION


class Lines:
    """Collects a stream's lines in a thread, so the test can wait for one."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,))
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            self.lines.extend(stream)

    def join(self) -> list[str]:
        self._thread.join()
        return self.lines


@pytest.fixture
def up(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [*UP, "--run-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_up_becomes_healthy_and_sigterm_leaves_no_process(up: subprocess.Popen[str]) -> None:
    assert up.stdout is not None
    assert up.stderr is not None
    out, err = Lines(up.stdout), Lines(up.stderr)
    eventually(lambda: any("healthy in" in line for line in err.lines), "all healthy", 90)
    children = psutil.Process(up.pid).children(recursive=True)
    commands = {" ".join(child.cmdline()) for child in children}
    for expected in ("redis-server", "jaeger", "prometheus", "daprd", "-m storefront"):
        assert any(expected in command for command in commands), expected

    up.send_signal(signal.SIGTERM)

    assert up.wait(timeout=30) == 0
    assert [child.pid for child in children if child.is_running()] == []
    assert err.join()[-1] == "orderflow: stopped\n"
    prefixes = {line.split(" | ", 1)[0].strip() for line in out.join() if " | " in line}
    assert {"redis", "jaeger", "prometheus", "storefront", "storefront-dapr"} <= prefixes


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 8003))
        holder.listen()
        yield 8003


def test_a_taken_port_stops_it_before_anything_starts(taken_port: int, tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*UP, "--run-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, check=False
    )

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"orderflow: port {taken_port} (payments app) is already in use on 127.0.0.1:"
        f" stop what holds it (`ss -ltnp 'sport = :{taken_port}'`) or change its port"
    )
    assert result.stdout == ""
    assert time.monotonic() - started < 10


def test_a_broken_resource_file_stops_it_with_one_line(tmp_path: Path) -> None:
    resources = tmp_path / "dapr"
    shutil.copytree(REPO / "deploy" / "dapr", resources)
    (resources / "resiliency.yaml").write_text("kind: Resiliency\nmetadata: {name: x}\n")
    run_file: dict[str, object] = yaml.safe_load((REPO / "dapr.yaml").read_text())
    common = run_file["common"]
    assert isinstance(common, dict)
    common["resourcesPath"] = str(resources)
    common["configFilePath"] = str(resources / "config.yaml")
    apps = run_file["apps"]
    assert isinstance(apps, list)
    for app in apps:
        app["appDirPath"] = str(REPO / app["appDirPath"])
    (tmp_path / "dapr.yaml").write_text(yaml.safe_dump(run_file))

    command = [
        sys.executable,
        "-m",
        "orderflow_devtools",
        "--run-file",
        str(tmp_path / "dapr.yaml"),
    ]
    result = subprocess.run(
        [*command, "up", "--run-dir", str(tmp_path / "run")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"orderflow: {resources / 'resiliency.yaml'}: apiVersion '' is not a dapr.io version"
    ]
    assert result.stdout == ""


def test_fault_with_a_malformed_flag_is_refused_before_anything_is_called() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orderflow_devtools", "fault", "set", "payments", "error_rate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert (result.returncode, result.stderr) == (
        2,
        "orderflow: 'error_rate' is not FLAG=VALUE\n",
    )


def _fault_show(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FAULT, "--run-dir", str(run_dir), "show", "payments"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_fault_without_the_stack_tokens_says_how_to_make_them(tmp_path: Path) -> None:
    result = _fault_show(tmp_path)

    assert (result.returncode, result.stderr) == (
        2,
        f"orderflow: {tmp_path / 'secrets' / 'tokens.json'} does not exist:"
        " start the stack once with `make up`\n",
    )


def test_fault_without_a_running_stack_says_how_to_start_one(tmp_path: Path) -> None:
    tokens.ensure(tmp_path, ["storefront"])

    result = _fault_show(tmp_path)

    assert (result.returncode, result.stderr) == (
        1,
        "orderflow: storefront is not answering at http://127.0.0.1:8001/faults/payments:"
        " start the stack with `make up`\n",
    )

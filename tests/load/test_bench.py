"""The benchmark's generator and arithmetic, without a stack: Locust offers exactly the
planned requests on schedule whatever the server does (open loop), latency counts from
the scheduled send, CPU is read at any moment between samples, and the comparison lists
each key figure."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orderflow_devtools.bench import KEY_FIGURES, Load, Sample, Sampler, compare, generate


class _Orders(BaseHTTPRequestHandler):
    """Answers POST /orders with a 201 and an order id, after ``delay`` seconds."""

    delay = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        time.sleep(self.delay)
        body = json.dumps({"order_id": f"o-{time.monotonic_ns()}"}).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Orders)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()
    _Orders.delay = 0.0


def test_the_generator_sends_rate_times_seconds_on_schedule(
    server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    host = f"http://127.0.0.1:{server.server_address[1]}"

    load = generate(host, rate=50, seconds=1.0, scratch=tmp_path)

    assert (len(load.requests), len(load.ok), load.errors) == (50, 50, 0)
    due = sorted(request[0] for request in load.requests)
    assert due[-1] - due[0] == pytest.approx(49 / 50)
    assert len({request[4] for request in load.ok}) == 50  # an order id each
    assert load.generator_cpu_s > 0


def test_a_slow_server_does_not_slow_the_sending_and_latency_counts_from_schedule(
    server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    _Orders.delay = 0.3
    host = f"http://127.0.0.1:{server.server_address[1]}"

    load = generate(host, rate=40, seconds=1.0, scratch=tmp_path)

    assert len(load.ok) == 40
    # Open loop: each request left on time, although every answer took 0.3 s.
    assert max(sent - due for due, sent, *_ in load.requests) < 0.1
    assert min(load.latencies_ms()) >= 300


def test_the_summary_times_from_schedule_and_counts_unanswered_as_errors() -> None:
    # Due every 0.1 s; the third left 0.5 s late (the generator was starved) and failed.
    requests = [
        (100.0, 100.0, 100.01, True, "o-1"),
        (100.1, 100.1, 100.12, True, "o-2"),
        (100.2, 100.7, 100.71, False, ""),
        (100.3, 100.8, 100.9, True, "o-4"),
    ]
    load = Load(
        rate=10, seconds=0.4, due_from=100.0, requests=requests, unanswered=1,
        generator_cpu_s=0.02,
    )  # fmt: skip

    summary = load.summary()

    assert (summary["sent"], summary["ok"], summary["errors"]) == (5, 3, 2)
    assert summary["max_ms"] == pytest.approx(600.0)  # from its schedule, not from its send
    assert sorted(load.latencies_ms(from_schedule=False)) == pytest.approx([10, 20, 100])
    assert summary["generator_cpu_percent"] == 5.0


def test_cpu_is_read_between_samples() -> None:
    sampler = Sampler({})
    sampler.samples = [
        Sample(at=10.0, cpu={"app": 1.0}, machine=5.0, pss=None),
        Sample(at=12.0, cpu={"app": 2.0}, machine=7.0, pss=None),
    ]

    assert sampler.at(11.5).cpu == {"app": 1.75}
    assert sampler.at(11.5).machine == pytest.approx(6.5)
    assert sampler.at(20.0).cpu == {"app": 2.0}


def test_compare_lists_each_key_figure_with_its_ratio() -> None:
    environment = {"when": "then", "cpu_model": "cpu", "cpus": 2}
    baseline = {
        "environment": environment,
        "summary": {"sustained_rps": 10, "cpu_ms_per_order": 90.0},
        "invocation": {"added_ms": {"p50": 1.0, "p99": 4.0}},
    }
    now = {
        "environment": environment,
        "summary": {"sustained_rps": 100, "cpu_ms_per_order": 18.0},
        "invocation": {"added_ms": {"p50": 1.5, "p99": 2.0}},
    }

    table = compare(now, baseline)

    assert "| sustained orders/s | 10 | 100 | 10.00 | higher |" in table
    assert "| CPU ms per order at 100/s | 90 | 18 | 0.20 | lower |" in table
    assert "| invocation added p99 ms | 4 | 2 | 0.50 | lower |" in table
    # Figures missing from either side are left out, not shown as zero.
    rows = [line for line in table.splitlines() if line.startswith("| ") and "figure" not in line]
    assert len(rows) == 4
    assert len(KEY_FIGURES) == 11

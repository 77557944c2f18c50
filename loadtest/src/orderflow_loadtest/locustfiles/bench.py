"""The load of ``orderflow bench`` (docs/load.md), not a scenario of ``orderflow-load``.

One user sends requests at a fixed rate on a fixed schedule, each in a greenlet of its
own, whether or not earlier ones have answered (an open loop, as Fortio does in Dapr's
perf tests): a slow server cannot slow the offered rate. Each request is timed from the
moment it was due, not from when it left, so a request that waited for a connection or
for this process's CPU counts that wait too (no coordinated omission). What each
request did is written to ``--bench-out`` as JSON for the bench to read: when it was
due, sent and answered (wall clock, to line up with the stack's own timestamps), whether
it got the expected status, and the order it created; and this process's CPU meanwhile.
https://docs.locust.io/en/stable/increase-performance.html (FastHttpUser)
"""

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import redis
from gevent.pool import Group  # type: ignore[import-untyped]
from locust import FastHttpUser, constant, events, task
from locust.argument_parser import LocustArgumentParser
from locust.exception import StopUser

PAYLOAD = json.dumps({"pad": "x" * 1009})  # 1 KiB of JSON
ORDER = {"customer_id": "c-bench", "items": [{"sku": "grinder", "quantity": 1}]}
# Requests still unanswered this long after the schedule ends are counted as failed.
DRAIN_SECONDS = 30.0
# One request: (ok, the order it created or "").
Send = Callable[[], tuple[bool, str]]
# What the bench reads of each request: due, sent, answered (wall clock), ok, order id.
Record = tuple[float, float, float, bool, str]


def _arguments(parser: LocustArgumentParser) -> None:
    parser.add_argument("--bench-rate", type=float, default=10.0, help="requests a second")
    parser.add_argument("--bench-seconds", type=float, default=10.0, help="how long")
    parser.add_argument(
        "--bench-request",
        choices=["order", "get", "post", "delete", "xadd"],
        default="order",
        help="POST /orders with a fresh Idempotency-Key; GET, DELETE or POST 1 KiB to"
        " --bench-path; or a Redis XADD of 1 KiB",
    )
    parser.add_argument("--bench-path", default="/orders")
    parser.add_argument("--bench-expect", type=int, default=201, help="the status that is ok")
    parser.add_argument("--bench-redis-port", type=int, default=6380)
    parser.add_argument("--bench-out", default="bench-requests.json")
    # From the environment, not the command line, which any local user can read.
    parser.add_argument(
        "--bench-token",
        default="",
        env_var="ORDERFLOW_BENCH_TOKEN",
        help="the dapr-api-token header for GET and POST (a sidecar's or an app's token)",
    )


events.init_command_line_parser.add_listener(_arguments)  # type: ignore[no-untyped-call]


class Scheduled(FastHttpUser):
    # Enough connections that none waits for another at the rates the bench offers.
    concurrency = 1000
    network_timeout = 30.0
    connection_timeout = 5.0
    wait_time = constant(0)

    @task
    def schedule(self) -> None:
        options = self.environment.parsed_options
        if options is None:
            raise RuntimeError("run by `orderflow bench` only")
        send = self._sender(options)
        rate, total = options.bench_rate, round(options.bench_rate * options.bench_seconds)
        records: list[Record] = []
        in_flight = Group()
        cpu_before = time.process_time()
        start = time.time() + 0.2
        for index in range(total):
            due = start + index / rate
            delay = due - time.time()
            if delay > 0:
                gevent.sleep(delay)
            in_flight.spawn(self._timed, send, due, records)
        in_flight.join(timeout=DRAIN_SECONDS)
        # This process's CPU while it sent, without Locust's start-up.
        cpu = time.process_time() - cpu_before
        unanswered = len(in_flight)
        in_flight.kill(block=False)
        Path(options.bench_out).write_text(
            json.dumps(
                {
                    "due_from": start,
                    "unanswered": unanswered,
                    "cpu_seconds": cpu,
                    "requests": records,
                }
            )
        )
        gevent.spawn(self.environment.runner.quit)
        raise StopUser

    @staticmethod
    def _timed(send: Send, due: float, records: list[Record]) -> None:
        sent = time.time()
        ok, order_id = send()
        records.append((due, sent, time.time(), ok, order_id))

    def _sender(self, options: Any) -> Send:
        expect: int = options.bench_expect
        path: str = options.bench_path
        token = {"dapr-api-token": options.bench_token} if options.bench_token else {}

        def order() -> tuple[bool, str]:
            headers = {"Idempotency-Key": f"bench-{uuid.uuid4()}"}
            with self.client.post(
                "/orders", json=ORDER, headers=headers, catch_response=True
            ) as response:
                if response.status_code != expect:
                    response.failure(f"{response.status_code}")
                    return False, ""
                return True, str(response.json()["order_id"])

        def get() -> tuple[bool, str]:
            with self.client.get(path, headers=token, catch_response=True) as response:
                ok = response.status_code == expect
                if not ok:
                    response.failure(f"{response.status_code}")
                return ok, ""

        def delete() -> tuple[bool, str]:
            with self.client.delete(path, catch_response=True) as response:
                ok = response.status_code == expect
                if not ok:
                    response.failure(f"{response.status_code}")
                return ok, ""

        def post() -> tuple[bool, str]:
            headers = {"content-type": "application/json", **token}
            with self.client.post(
                path, data=PAYLOAD, headers=headers, catch_response=True
            ) as response:
                ok = response.status_code == expect
                if not ok:
                    response.failure(f"{response.status_code}")
                return ok, ""

        store = redis.Redis(port=options.bench_redis_port)

        def xadd() -> tuple[bool, str]:
            # What Dapr's Redis Streams component does for one publish: one XADD.
            started = time.perf_counter()
            store.xadd("bench-direct", {"data": PAYLOAD}, maxlen=10_000, approximate=True)
            self.environment.events.request.fire(
                request_type="XADD",
                name="bench-direct",
                response_time=(time.perf_counter() - started) * 1000,
                response_length=0,
                exception=None,
                context={},
            )
            return True, ""

        senders: dict[str, Send] = {
            "order": order,
            "get": get,
            "post": post,
            "delete": delete,
            "xadd": xadd,
        }
        return senders[options.bench_request]

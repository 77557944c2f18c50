"""The tokens and scopes of issue 13, probed on the real stack (every app with its real
daprd, Redis behind them), with nothing but HTTP on the same machine, as the issue did:

- every sidecar API refuses a call without its Dapr API token, or with a wrong one: 401;
- every app route its sidecar calls refuses a call that bypasses the sidecar (no app API
  token, or a wrong one): 401; what is open is exactly health, metrics, the OpenAPI docs,
  storefront's public order API, and the fault admin API behind its own token;
- a publish outside the publisher's scopes, or to a topic that is not one, is refused:
  403 ERR_PUBSUB_FORBIDDEN;
- an app's sidecar reading another app's state key finds nothing;
- the fault-flag binding exists for storefront's sidecar only.

Redis is read whole before and after every refused probe: each leaves every key and
value as it was.
https://docs.dapr.io/operations/security/api-token/
https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-scopes/
"""

import json
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from fulfillment import shipments
from inventory import stock
from notifications import events
from orderflow_common import faultadmin, faults
from orderflow_devtools.client import Shop
from orderflow_devtools.stack import LocalStack
from payments import charges
from storefront import orders, progress

pytestmark = pytest.mark.integration

Snapshot = dict[str, tuple[str, Any]]
APPS = ("storefront", "inventory", "payments", "fulfillment", "notifications")
WRONG = "not-the-token"
# No token at all, and a wrong one.
BAD_HEADERS: tuple[dict[str, str], ...] = ({}, {"dapr-api-token": WRONG})
CHARGE = {"order_id": "o-probe", "customer_id": "c", "amount_cents": 1, "payment_token": "t"}
FLAG = {"operation": "create", "data": True, "metadata": {"key": "payments.down"}}

# Every building-block API of the sidecar's HTTP port (https://docs.dapr.io/reference/api/),
# the probes first, then a route that does not exist: the token is checked before
# routing, so that one is refused alike.
SIDECAR_APIS: tuple[tuple[str, str, Any], ...] = (
    ("GET", "/v1.0/metadata", None),
    ("POST", "/v1.0/invoke/payments/method/charges", CHARGE),
    ("GET", "/v1.0/state/orderstore/order-probe", None),
    ("POST", "/v1.0/state/statestore", [{"key": "charge-o-probe", "value": CHARGE}]),
    ("POST", "/v1.0/bindings/faultflags", FLAG),
    ("GET", "/v1.0/invoke/payments/method/faults", None),
    ("PUT", "/v1.0/invoke/inventory/method/stock/grinder", {"quantity": 0}),
    ("GET", "/v1.0/invoke/payments/method/attempts/o-probe", None),
    ("DELETE", "/v1.0/invoke/inventory/method/reservations/o-probe", None),
    ("PUT", "/v1.0/metadata/probe", "x"),
    ("GET", "/v1.0/state/statestore/stock-grinder", None),
    ("DELETE", "/v1.0/state/statestore/stock-grinder", None),
    ("POST", "/v1.0/state/statestore/bulk", {"keys": ["stock-grinder"]}),
    ("POST", "/v1.0/state/statestore/transaction", {"operations": []}),
    ("POST", "/v1.0-alpha1/state/statestore/query", {"filter": {}}),
    ("POST", "/v1.0/publish/pubsub/order-placed", {"order_id": "o-probe"}),
    ("POST", "/v1.0-alpha1/publish/bulk/pubsub/order-placed", []),
    ("GET", "/v1.0/configuration/configstore", None),
    ("GET", "/v1.0/configuration/configstore/subscribe", None),
    ("GET", "/v1.0/configuration/configstore/probe/unsubscribe", None),
    ("GET", "/v1.0/secrets/kubernetes/probe", None),
    ("GET", "/v1.0/secrets/kubernetes/bulk", None),
    ("POST", "/v1.0-alpha1/lock/lockstore", {}),
    ("POST", "/v1.0-alpha1/unlock/lockstore", {}),
    ("PUT", "/v1.0-alpha1/crypto/probe/encrypt", "x"),
    ("POST", "/v1.0-beta1/workflows/dapr/probe/start", {}),
    ("GET", "/v1.0-beta1/workflows/dapr/probe", None),
    ("POST", "/v1.0-alpha1/jobs/probe", {}),
    ("GET", "/v1.0-alpha1/jobs/probe", None),
    ("POST", "/v1.0/actors/probe/p-1/method/m", {}),
    ("GET", "/v1.0/actors/probe/p-1/state/k", None),
    ("POST", "/v1.0-alpha2/conversation/probe/converse", {}),
    ("POST", "/v1.0/shutdown", None),
    ("GET", "/v1.0/no-such-api", None),
)

# What answers without the app token on every app, and on storefront besides.
OPEN_EVERYWHERE = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
STOREFRONT_PUBLIC = {("POST", "/orders"), ("GET", "/orders/{order_id}")}
FAULT_ADMIN = {
    ("GET", "/faults/{service}"),
    ("PUT", "/faults/{service}"),
    ("DELETE", "/faults/{service}"),
}

# The intended pub/sub graph (deploy/dapr/subscriptions.yaml and the code's publishes):
# who may publish to which topic. Each subscriber publishes to orders-dead-letter too
# (its sidecar dead-letters there); bench-publish is `orderflow bench`'s.
TOPICS = (
    "order-placed",
    "order-shipped",
    "customer-notified",
    "orders-dead-letter",
    "bench-publish",
)
PUBLISHES = {
    "storefront": {"order-placed", "orders-dead-letter", "bench-publish"},
    "fulfillment": {"order-shipped", "orders-dead-letter"},
    "notifications": {"customer-notified", "orders-dead-letter"},
}
STATESTORE_APPS = ("inventory", "payments", "fulfillment", "notifications")


def _sidecar(local_stack: LocalStack, app_id: str, path: str) -> str:
    return f"{local_stack.dapr_url(app_id)}{path}"


def _request(
    http: httpx.Client, method: str, url: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    if body is None:
        return http.request(method, url, headers=headers)
    if isinstance(body, str):
        return http.request(method, url, content=body, headers=headers)
    return http.request(method, url, json=body, headers=headers)


def _error(body: str) -> tuple[str, str]:
    """A Dapr error's code and message."""
    error = json.loads(body)
    return str(error["errorCode"]), str(error["message"])


def _refused_alike(
    redis_state: Callable[[], Snapshot],
    probes: Sequence[tuple[str, Callable[[], httpx.Response]]],
) -> dict[str, tuple[int, str]]:
    """Each probe's status and body, each checked to leave Redis exactly as it was."""
    answers = {}
    for name, probe in probes:
        before = redis_state()
        response = probe()
        assert redis_state() == before, name
        answers[name] = (response.status_code, response.text.strip())
    return answers


def test_every_sidecar_api_refuses_a_call_without_its_token(
    local_stack: LocalStack, http: httpx.Client, redis_state: Callable[[], Snapshot]
) -> None:
    probes = [
        (
            f"{app_id} {method} {path} {sorted(headers.values())}",
            partial(_request, http, method, _sidecar(local_stack, app_id, path), body, headers),
        )
        for app_id in APPS
        for method, path, body in SIDECAR_APIS
        for headers in BAD_HEADERS
    ]

    answers = _refused_alike(redis_state, probes)

    assert len(answers) == 340
    assert set(answers.values()) == {(401, "invalid api token")}


def test_a_sidecar_answers_its_health_without_a_token(
    local_stack: LocalStack, http: httpx.Client
) -> None:
    answers = {
        (app_id, path): http.get(_sidecar(local_stack, app_id, path)).status_code
        for app_id in APPS
        for path in ("/v1.0/healthz", "/v1.0/healthz/outbound")
    }

    assert set(answers.values()) == {204}


def _routes(routers: Sequence[APIRouter]) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


# The routers each app mounts behind the app token (their main.create_app): GET /faults,
# which every app has, and its own.
GUARDED_ROUTERS: dict[str, list[APIRouter]] = {
    "storefront": [faults.router, progress.router],
    "inventory": [faults.router, stock.router],
    "payments": [faults.router, charges.router],
    "fulfillment": [faults.router, shipments.router],
    "notifications": [faults.router, events.router],
}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "probe", path)


def test_every_app_route_its_sidecar_calls_refuses_a_call_that_bypasses_the_sidecar(
    local_stack: LocalStack, http: httpx.Client, redis_state: Callable[[], Snapshot]
) -> None:
    guarded = {app_id: _routes(routers) for app_id, routers in GUARDED_ROUTERS.items()}
    probes = [
        (
            f"{app_id} {method} {path} {sorted(headers.values())}",
            partial(
                _request,
                http,
                method,
                f"{local_stack.app_url(app_id)}{_concrete(path)}",
                None if method == "GET" else {},
                headers,
            ),
        )
        for app_id, found in guarded.items()
        for method, path in sorted(found)
        for headers in BAD_HEADERS
    ]

    answers = _refused_alike(redis_state, probes)

    # Every route the issue found open, among them: payments' charges and inventory's stock.
    assert ("POST", "/charges") in guarded["payments"]
    assert ("PUT", "/stock/{sku}") in guarded["inventory"]
    assert {app_id: len(found) for app_id, found in guarded.items()} == {
        "storefront": 3,
        "inventory": 6,
        "payments": 5,
        "fulfillment": 3,
        "notifications": 6,
    }
    assert len(answers) == 46
    assert set(answers.values()) == {(401, '{"detail":"a valid dapr-api-token header is needed"}')}


def test_what_is_open_answers_without_the_app_token(
    local_stack: LocalStack, http: httpx.Client, shop: Shop
) -> None:
    opened = {
        (app_id, path): http.get(f"{local_stack.app_url(app_id)}{path}").status_code
        for app_id in APPS
        for method, path in OPEN_EVERYWHERE
        if path != "/docs/oauth2-redirect"
    }
    placed = shop.place({"grinder": 1})
    order = http.get(f"{local_stack.app_url('storefront')}/orders/{placed.json()['order_id']}")
    admin = http.get(f"{local_stack.app_url('storefront')}/faults/payments")

    assert set(opened.values()) == {200}
    assert _routes([orders.router]) == STOREFRONT_PUBLIC
    assert _routes([faultadmin.router]) == FAULT_ADMIN
    assert (placed.status_code, order.status_code) == (201, 200)
    # The fault admin API has its own token instead.
    assert (admin.status_code, admin.json()) == (
        403,
        {"detail": "a valid X-Fault-Token header is needed"},
    )


def test_a_publish_outside_the_publishers_scopes_is_forbidden(
    local_stack: LocalStack, http: httpx.Client, redis_state: Callable[[], Snapshot]
) -> None:
    probes = [
        (
            f"{app_id} -> {topic}",
            partial(
                http.post,
                _sidecar(local_stack, app_id, f"/v1.0/publish/pubsub/{topic}"),
                json={"order_id": "o-probe"},
                headers=local_stack.tokens.sidecar_headers(app_id),
            ),
        )
        for app_id, allowed in PUBLISHES.items()
        for topic in [*TOPICS, "not-a-topic"]
        if topic not in allowed
    ]

    answers = _refused_alike(redis_state, probes)

    assert len(answers) == 11
    assert {name: (status, _error(body)) for name, (status, body) in answers.items()} == {
        f"{app_id} -> {topic}": (
            403,
            ("ERR_PUBSUB_FORBIDDEN", f"topic {topic} is not allowed for app id {app_id}"),
        )
        for app_id, allowed in PUBLISHES.items()
        for topic in [*TOPICS, "not-a-topic"]
        if topic not in allowed
    }
    # An app without the component has no pub/sub at all.
    for app_id in ("inventory", "payments"):
        response = http.post(
            _sidecar(local_stack, app_id, "/v1.0/publish/pubsub/order-placed"),
            json={"order_id": "o-probe"},
            headers=local_stack.tokens.sidecar_headers(app_id),
        )
        assert (response.status_code, response.json()["errorCode"]) == (
            404,
            "ERR_PUBSUB_NOT_FOUND",
        ), app_id


def test_a_publish_in_scope_is_accepted(local_stack: LocalStack, http: httpx.Client) -> None:
    # The one topic in scope that nobody reads, so that the event starts nothing.
    response = http.post(
        _sidecar(local_stack, "storefront", "/v1.0/publish/pubsub/bench-publish"),
        json={"probe": True},
        headers=local_stack.tokens.sidecar_headers("storefront"),
    )

    assert response.status_code == 204


def test_no_app_reads_another_apps_state(
    local_stack: LocalStack,
    http: httpx.Client,
    shop: Shop,
    redis_state: Callable[[], Snapshot],
) -> None:
    order_id = shop.place({"grinder": 1}).json()["order_id"]
    shop.wait_for_status(order_id, "notified")
    owned: dict[str, str] = {}
    for key in redis_state():
        app_id, separator, name = key.partition("||")
        if separator and app_id in APPS and order_id in name:
            owned.setdefault(app_id, name)

    def read(reader: str, store: str, key: str) -> httpx.Response:
        return http.get(
            _sidecar(local_stack, reader, f"/v1.0/state/{store}/{key}"),
            headers=local_stack.tokens.sidecar_headers(reader),
        )

    # Each owner reads its own key: the keys are real.
    assert {
        app_id: read(app_id, "statestore", owned[app_id]).status_code for app_id in STATESTORE_APPS
    } == dict.fromkeys(STATESTORE_APPS, 200)
    assert read("storefront", "orderstore", owned["storefront"]).status_code == 200
    probes = [
        (
            f"{reader} reads {owner}'s {owned[owner]}",
            partial(read, reader, "statestore", owned[owner]),
        )
        for owner in STATESTORE_APPS
        for reader in STATESTORE_APPS
        if reader != owner
    ]
    orderstore = [
        (
            f"{reader} reads storefront's {owned['storefront']}",
            partial(read, reader, "orderstore", owned["storefront"]),
        )
        for reader in STATESTORE_APPS
    ]

    answers = _refused_alike(redis_state, probes)
    foreign = _refused_alike(redis_state, orderstore)

    assert len(answers) == 12
    assert set(answers.values()) == {(204, "")}
    # The order store is storefront's alone: no other sidecar has it.
    assert len(foreign) == 4
    assert {(status, _error(body)) for status, body in foreign.values()} == {
        (400, ("ERR_STATE_STORE_NOT_FOUND", "state store orderstore is not found"))
    }


def test_only_storefront_has_the_fault_flag_binding(
    local_stack: LocalStack, http: httpx.Client, redis_state: Callable[[], Snapshot]
) -> None:
    probes = [
        (
            app_id,
            partial(
                http.post,
                _sidecar(local_stack, app_id, "/v1.0/bindings/faultflags"),
                json=FLAG,
                headers=local_stack.tokens.sidecar_headers(app_id),
            ),
        )
        for app_id in STATESTORE_APPS
    ]

    answers = _refused_alike(redis_state, probes)

    # Dapr answers a binding its sidecar does not have with a 500 of its own.
    assert len(answers) == 4
    assert {(status, _error(body)) for status, body in answers.values()} == {
        (
            500,
            (
                "ERR_INVOKE_OUTPUT_BINDING",
                "error invoking output binding faultflags: couldn't find output binding faultflags",
            ),
        )
    }

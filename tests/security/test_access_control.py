"""Service invocation is default deny, against the real daprd, sentry and Redis: of every
(caller's sidecar, callee, verb, route) the apps serve, exactly the calls storefront makes
get through; every other one is refused with 403 by the callee's sidecar, which names the
caller by the SPIFFE id of its mTLS certificate, and leaves Redis as it was.

deploy/dapr/config.yaml denies everyone; deploy/dapr/access-control gives inventory and
payments each the one policy that admits storefront. A sidecar invoking its own app does
not cross the network (daprd calls the app directly), so the matrix is of pairs of apps.
"""

import itertools
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orderflow_devtools.client import Shop
from orderflow_devtools.observe import metric
from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration

APPS = ("storefront", "inventory", "payments", "fulfillment", "notifications")
# Every app serves these (orderflow_common: app.py, faults.py, telemetry.py; FastAPI's
# docs); all but the health check are outside the apps' OpenAPI (include_in_schema=False,
# FastAPI's own).
HIDDEN_EVERY_APP = (
    ("GET", "/metrics"),
    ("GET", "/faults"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
)
EVERY_APP = (("GET", "/healthz"), *HIDDEN_EVERY_APP)
HIDDEN = {
    "storefront": (("POST", "/events/order-shipped"), ("POST", "/events/customer-notified")),
}
# And each its own routes (services/<app>/src); test_the_routes_are_the_apps_routes checks
# the table against the apps.
ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "storefront": (
        ("POST", "/orders"),
        ("GET", "/orders/{order_id}"),
        ("GET", "/faults/{service}"),
        ("PUT", "/faults/{service}"),
        ("DELETE", "/faults/{service}"),
        ("POST", "/events/order-shipped"),
        ("POST", "/events/customer-notified"),
    ),
    "inventory": (
        ("GET", "/stock"),
        ("PUT", "/stock/{sku}"),
        ("POST", "/reservations"),
        ("GET", "/reservations/{order_id}"),
        ("DELETE", "/reservations/{order_id}"),
    ),
    "payments": (
        ("POST", "/charges"),
        ("GET", "/charges/{order_id}"),
        ("DELETE", "/charges/{order_id}"),
        ("GET", "/attempts/{order_id}"),
    ),
    "fulfillment": (
        ("POST", "/events/order-placed"),
        ("GET", "/shipments/{order_id}"),
    ),
    "notifications": (
        ("POST", "/events/order-placed"),
        ("POST", "/events/order-shipped"),
        ("POST", "/events/dead-letter"),
        ("GET", "/notifications/{order_id}"),
        ("GET", "/dead-letters/{order_id}"),
    ),
}
# The calls storefront makes (services/storefront/src/storefront/orders.py: reserve, charge,
# and the compensation's release and refund), with the status each answers here.
CALL_GRAPH = {
    ("storefront", "inventory", "POST", "/reservations"): 201,
    ("storefront", "inventory", "DELETE", "/reservations/{order_id}"): 200,
    ("storefront", "payments", "POST", "/charges"): 201,
    ("storefront", "payments", "DELETE", "/charges/{order_id}"): 200,
}
# One faults/{service} value per verb: Dapr keeps a circuit breaker per target and method,
# and a refused call counts against it (test_a_refused_call_is_retried...), so no two
# probes of one caller share a method path.
SERVICE_BY_VERB = {"GET": "payments", "PUT": "inventory", "DELETE": "notifications"}


@dataclass(frozen=True)
class Probe:
    caller: str
    callee: str
    verb: str
    route: str
    order_id: str

    @property
    def path(self) -> str:
        return self.route.format(
            order_id=self.order_id,
            sku="grinder",
            service=SERVICE_BY_VERB.get(self.verb, "payments"),
            key="payments.down",
        )

    def body(self) -> dict[str, Any] | None:
        """What the route would act on, had the call got through."""
        items = [{"sku": "grinder", "quantity": 1}]
        bodies: dict[str, dict[str, Any]] = {
            "/reservations": {"order_id": self.order_id, "items": items},
            "/charges": {
                "order_id": self.order_id,
                "customer_id": "c-acl",
                "amount_cents": 8900,
                "payment_token": "tok_visa",
            },
            "/stock/{sku}": {"quantity": 0},
            "/orders": {"customer_id": "c-acl", "items": items},
            "/faults/{service}": {"error_rate": 100},
        }
        if self.verb in ("GET", "DELETE"):
            return None
        return bodies.get(self.route, {"id": self.order_id})


def matrix() -> list[Probe]:
    """Every (caller, callee, verb, route) with caller and callee two different apps."""
    counter = itertools.count()
    return [
        Probe(caller, callee, verb, route, f"acl-{next(counter)}-{uuid.uuid4().hex[:8]}")
        for caller, callee in itertools.permutations(APPS, 2)
        for verb, route in EVERY_APP + ROUTES[callee]
    ]


def invoke(
    client: httpx.Client, local_stack: LocalStack, probe: Probe, path: str | None = None
) -> httpx.Response:
    """The call ``probe`` describes, made through the caller's sidecar."""
    return client.request(
        probe.verb,
        f"{local_stack.dapr_url(probe.caller)}/v1.0/invoke/{probe.callee}/method"
        f"{path or probe.path}",
        json=probe.body(),
        headers=local_stack.tokens.sidecar_headers(probe.caller),
    )


def refusal(probe: Probe) -> dict[str, str]:
    """What the caller's sidecar answers when the callee's refused the call: the callee's
    gRPC PermissionDenied, which names the caller's certificate."""
    return {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": f"failed to invoke, id: {probe.callee}, err: rpc error: code ="
        " PermissionDenied desc = access control policy has denied access to id:"
        f" spiffe://public/ns/orderflow/{probe.caller} operation: {probe.path.lstrip('/')}"
        f" verb: {probe.verb}",
    }


def requests_served(local_stack: LocalStack, app_id: str) -> float:
    """How many requests the app has answered on any route but its health check (the
    sidecar's probe) and its metrics (Prometheus's scrape)."""
    text = httpx.get(f"{local_stack.app_url(app_id)}/metrics", timeout=5).raise_for_status().text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "http_server_request_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
        and sample.labels.get("http_route") not in ("/healthz", "/metrics")
    )


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def test_the_matrix_is_every_pair_of_apps_and_every_route() -> None:
    probes = matrix()
    allowed = [p for p in probes if (p.caller, p.callee, p.verb, p.route) in CALL_GRAPH]

    assert len(probes) == 4 * (5 * len(EVERY_APP) + sum(len(own) for own in ROUTES.values()))
    assert len(probes) == 232
    assert len(allowed) == len(CALL_GRAPH) == 4


def test_the_routes_are_the_apps_routes(local_stack: LocalStack, client: httpx.Client) -> None:
    """The table is each app's OpenAPI operations and the routes left out of it, and
    each of those answers straight from the app (a GET 200, a POST with a body it cannot
    read 422: nothing changes)."""
    for app_id in APPS:
        base = local_stack.app_url(app_id)
        schema = client.get(f"{base}/openapi.json").raise_for_status().json()
        documented = {
            (verb.upper(), path) for path, item in schema["paths"].items() for verb in item
        }
        hidden = set(HIDDEN_EVERY_APP + HIDDEN.get(app_id, ()))

        assert documented | hidden == set(EVERY_APP + ROUTES[app_id]), app_id
        assert documented & hidden == set(), app_id
        for verb, route in sorted(hidden):
            path = Probe(app_id, app_id, verb, route, "acl-exists").path
            answer = client.request(
                verb,
                f"{base}{path}",
                json=None if verb == "GET" else [],
                headers=local_stack.tokens.app_headers(app_id),
            )
            assert answer.status_code == (200 if verb == "GET" else 422), (app_id, route)


def test_every_call_outside_the_call_graph_is_refused_by_the_callee_and_changes_nothing(
    local_stack: LocalStack, client: httpx.Client, redis_state: Callable[[], object]
) -> None:
    refused = [p for p in matrix() if (p.caller, p.callee, p.verb, p.route) not in CALL_GRAPH]
    before = redis_state()
    served_before = {app_id: requests_served(local_stack, app_id) for app_id in APPS}

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda probe: invoke(client, local_stack, probe), refused))

    assert len(refused) == 228
    wrong = [
        (probe, answer.status_code, answer.text)
        for probe, answer in zip(refused, answers, strict=True)
        if answer.status_code != 403 or answer.json() != refusal(probe)
    ]
    assert wrong == []
    assert redis_state() == before
    assert {app_id: requests_served(local_stack, app_id) for app_id in APPS} == served_before


def test_the_call_graph_is_allowed(local_stack: LocalStack, client: httpx.Client) -> None:
    order_id = f"acl-allowed-{uuid.uuid4().hex[:8]}"
    answers = {
        call: invoke(client, local_stack, Probe(*call, order_id)).status_code for call in CALL_GRAPH
    }

    assert answers == CALL_GRAPH


def test_a_refused_call_is_retried_and_counts_against_that_methods_breaker(
    local_stack: LocalStack, client: httpx.Client, shop: Shop
) -> None:
    """Dapr 1.18.2 hands the resiliency policy a refusal as an error without an HTTP
    status (pkg/api/http/directmessaging.go, invokeError), so `matching.httpStatusCodes`
    cannot exempt it: the caller's sidecar sends it 1 + 3 times (deploy/dapr/resiliency.yaml
    invoke-5xx), and each counts against the breaker of that target and method. The
    breakers of the methods storefront calls are others, so orders go on."""
    probe = Probe("storefront", "inventory", "GET", "/reservations/{order_id}", "acl-breaker")
    sent = "dapr_runtime_service_invocation_req_sent_total"
    storefront_metrics = local_stack.metrics_url("storefront")
    before = metric(storefront_metrics, sent, dst_app_id="inventory")

    first = invoke(client, local_stack, probe)
    after_first = metric(storefront_metrics, sent, dst_app_id="inventory")
    second = invoke(client, local_stack, probe)
    after_second = metric(storefront_metrics, sent, dst_app_id="inventory")

    assert (first.status_code, first.json()) == (403, refusal(probe))
    assert after_first - before == 4
    # Four failures of the first, the fifth trips the breaker (consecutiveFailures >= 5),
    # and the retry stops at the open breaker: one attempt sent.
    assert second.status_code == 500
    assert second.json() == {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": "failed to invoke, id: inventory, err: circuit breaker is open",
    }
    assert after_second - after_first == 1
    assert shop.place({"grinder": 1}).status_code == 201

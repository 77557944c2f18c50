"""A typed client for a running orderflow: place and read orders, set fault flags and
wait until every service applies them, and read what each service recorded.

The tests, ``orderflow fault`` and the benchmarks use it, so each knows the API once.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from orderflow_devtools.observe import eventually

Json = dict[str, Any]


@dataclass(frozen=True)
class Endpoints:
    """Where each service answers, storefront's fault token, and each app's API token
    (what its sidecar sends it: every route but storefront's order API and health needs
    it, orderflow_common/auth.py)."""

    apps: Mapping[str, str]
    fault_token: str
    app_tokens: Mapping[str, str]


class Shop:
    def __init__(self, endpoints: Endpoints, timeout: float = 30.0) -> None:
        self.endpoints = endpoints
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def url(self, app_id: str, path: str) -> str:
        return f"{self.endpoints.apps[app_id]}{path}"

    def as_sidecar(self, app_id: str) -> dict[str, str]:
        """The header ``app_id``'s sidecar sends it: a call straight to an app's port
        needs it, as one bypassing the sidecar must not get in without it."""
        return {"dapr-api-token": self.endpoints.app_tokens[app_id]}

    def get(self, app_id: str, path: str) -> httpx.Response:
        """GET ``path`` straight from ``app_id``, as its sidecar would."""
        return self.http.get(self.url(app_id, path), headers=self.as_sidecar(app_id))

    # Orders

    def place(
        self,
        items: Mapping[str, int],
        *,
        customer_id: str = "c-1",
        payment_token: str = "tok_visa",  # noqa: S107 - a public test token
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        body = {
            "customer_id": customer_id,
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items.items()],
            "payment_token": payment_token,
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.http.post(self.url("storefront", "/orders"), json=body, headers=headers)

    def order(self, order_id: str) -> Json:
        response = self.http.get(self.url("storefront", f"/orders/{order_id}"))
        return dict(response.raise_for_status().json())

    def wait_for_status(self, order_id: str, status: str, timeout: float = 30.0) -> Json:
        return eventually(
            lambda: (order := self.order(order_id))["status"] == status and order,
            f"order {order_id} to be {status}",
            timeout,
        )

    def wait_for_history(self, order_id: str, steps: list[str], timeout: float = 30.0) -> Json:
        """Until the order's history holds exactly ``steps``. Its status can read notified
        a moment before the shipped step lands: customer-notified can overtake an
        order-shipped whose write lost a race and is redelivered half a second later."""

        def reached() -> Json:
            order = self.order(order_id)
            return order if [s["status"] for s in order["history"]] == steps else {}

        return eventually(reached, f"order {order_id} to go {' -> '.join(steps)}", timeout)

    # What each service recorded

    def charge_attempts(self, order_id: str) -> int:
        response = self.get("payments", f"/attempts/{order_id}")
        return int(response.raise_for_status().json()["attempts"])

    def notifications(self, order_id: str) -> list[Json]:
        response = self.get("notifications", f"/notifications/{order_id}")
        return list(response.raise_for_status().json())

    def dead_letters(self, order_id: str) -> list[Json]:
        response = self.get("notifications", f"/dead-letters/{order_id}")
        return list(response.raise_for_status().json())

    def shipment(self, order_id: str) -> Json | None:
        response = self.get("fulfillment", f"/shipments/{order_id}")
        return None if response.status_code == 404 else dict(response.raise_for_status().json())

    def stock(self) -> dict[str, int]:
        return dict(self.get("inventory", "/stock").raise_for_status().json())

    def set_stock(self, sku: str, quantity: int) -> None:
        self.http.put(
            self.url("inventory", f"/stock/{sku}"),
            json={"quantity": quantity},
            headers=self.as_sidecar("inventory"),
        ).raise_for_status()

    # Fault flags

    def set_faults(self, service: str, **flags: int | bool) -> Json:
        """Replace ``service``'s flags (the rest go back to off) and wait until every
        service that runs here applies them."""
        response = self.http.put(
            self.url("storefront", f"/faults/{service}"),
            json=flags,
            headers={"X-Fault-Token": self.endpoints.fault_token},
        )
        applied = dict(response.raise_for_status().json())
        eventually(
            lambda: self.get(service, "/faults").json() == applied,
            f"{service} to apply {flags}",
        )
        return applied

    def clear_faults(self, service: str) -> None:
        self.set_faults(service)

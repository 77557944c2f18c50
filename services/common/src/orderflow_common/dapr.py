"""The one typed async adapter through which every service talks to its Dapr sidecar.

It speaks the sidecar's HTTP API with httpx, so that HTTP client instrumentation sees
every call and can carry the trace context onward.
https://docs.dapr.io/reference/api/service_invocation_api/
https://docs.dapr.io/reference/api/pubsub_api/
"""

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from orderflow_common.settings import ServiceSettings

JSON = Mapping[str, Any]


class DaprError(Exception):
    """The sidecar refused or failed a building-block call (not a business answer)."""

    def __init__(self, operation: str, response: httpx.Response) -> None:
        super().__init__(f"{operation}: sidecar answered {response.status_code}: {response.text}")
        self.status_code = response.status_code


class DaprClient:
    def __init__(
        self, settings: ServiceSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=settings.dapr_base_url,
            timeout=settings.dapr_api_timeout_seconds,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def invoke(self, app_id: str, method: str, body: JSON) -> httpx.Response:
        """POST ``body`` to ``method`` on ``app_id`` and return the callee's answer as is:
        a 4xx from the callee is a business answer for the caller to read."""
        return await self._http.post(f"/v1.0/invoke/{app_id}/method/{method}", json=body)

    async def publish(self, pubsub: str, topic: str, data: JSON, *, event_type: str) -> None:
        """Publish ``data`` as a CloudEvent whose ``type`` is ``event_type``, so that
        subscribers can route on it."""
        response = await self._http.post(
            f"/v1.0/publish/{pubsub}/{topic}",
            json=data,
            params={"metadata.cloudevent.type": event_type},
        )
        if response.status_code != httpx.codes.NO_CONTENT:
            raise DaprError(f"publish to {pubsub}/{topic}", response)

"""The app API token: every route a sidecar calls (service invocation, pub/sub delivery,
configuration updates) answers 401 unless the request carries this app's token in the
``dapr-api-token`` header. The app's sidecar adds it to every request it makes to the app
when daprd has ``APP_API_TOKEN`` set, so a client that reaches the app port directly,
bypassing the sidecar, is refused. Health and metrics stay open for the probes and the
scrapers, and so does what a service declares public (storefront's order API).
https://docs.dapr.io/operations/security/app-api-token/
"""

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from orderflow_common.contracts import error

TOKEN_HEADER = "dapr-api-token"  # noqa: S105 - the name of a header, not a secret

# A security scheme rather than a plain header parameter: the OpenAPI documents it as
# such, and a fuzzer sends the configured token instead of generating one.
# https://fastapi.tiangolo.com/reference/security/#fastapi.security.APIKeyHeader
_scheme = APIKeyHeader(
    name=TOKEN_HEADER,
    scheme_name="app-api-token",
    description="This app's APP_API_TOKEN; its Dapr sidecar sends it on every call.",
    auto_error=False,
)


def app_token(expected: SecretStr) -> Callable[[str | None], None]:
    """The dependency that refuses a request without the token ``expected`` (the app's
    settings.app_api_token, passed in by create_service_app)."""

    def require_app_token(token: Annotated[str | None, Depends(_scheme)]) -> None:
        # Constant time, so that the answer's timing tells nothing about the token.
        secret = expected.get_secret_value().encode()
        if token is None or not hmac.compare_digest(token.encode(), secret):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, f"a valid {TOKEN_HEADER} header is needed"
            )

    return require_app_token


# For the OpenAPI of every route behind it.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: error(f"no valid {TOKEN_HEADER} header: not from the sidecar")
}

"""Settings every service shares, read from the environment with pydantic-settings.

The ports come from the variables that `dapr run` and the Kubernetes sidecar injector set
for the app (APP_PORT, DAPR_HTTP_PORT, DAPR_GRPC_PORT), so they are read without a
prefix; each service adds its own fields in a subclass with its own prefix (e.g. ``STOREFRONT_``).
https://docs.dapr.io/reference/environment/
"""

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    app_host: str = Field(default="127.0.0.1", validation_alias="APP_HOST")
    app_port: PositiveInt = Field(validation_alias="APP_PORT")
    dapr_host: str = Field(default="127.0.0.1", validation_alias="DAPR_HOST")
    dapr_http_port: PositiveInt = Field(default=3500, validation_alias="DAPR_HTTP_PORT")
    dapr_grpc_port: PositiveInt = Field(default=50001, validation_alias="DAPR_GRPC_PORT")
    # How long a starting app waits for its sidecar before it gives up.
    dapr_health_timeout_seconds: PositiveInt = Field(
        default=60, validation_alias="DAPR_HEALTH_TIMEOUT"
    )
    # The Dapr clients have no deadline of their own; every call to the sidecar gets one.
    dapr_api_timeout_seconds: PositiveFloat = Field(
        default=10.0, validation_alias="DAPR_API_TIMEOUT_SECONDS"
    )
    # The tokens, both required: a service does not start unprotected. DAPR_API_TOKEN goes
    # with every call to the sidecar, which refuses calls without it; APP_API_TOKEN is what
    # the sidecar sends with every call to the app (orderflow_common.auth).
    # https://docs.dapr.io/operations/security/api-token/
    dapr_api_token: SecretStr = Field(validation_alias="DAPR_API_TOKEN")
    app_api_token: SecretStr = Field(validation_alias="APP_API_TOKEN")
    log_level: str = Field(default="info", validation_alias="LOG_LEVEL")
    # uvicorn answers 503 past this many concurrent connections: the storefront bulkhead.
    # https://www.uvicorn.org/settings/#resource-limits
    max_concurrency: PositiveInt | None = Field(default=None, validation_alias="MAX_CONCURRENCY")
    # Larger request bodies get a 413: no API here needs more than a few KiB.
    max_body_bytes: PositiveInt = Field(default=64 * 1024, validation_alias="MAX_BODY_BYTES")

    # Fault injection (orderflow_common.faults): the flags, their subscription and the
    # /faults routes exist only where this is on: the local stack (dapr.yaml), the chaos
    # overlay and the tests that need them. Off by default, so a new service and the prod
    # overlay have none of it.
    faults_enabled: bool = Field(default=False, validation_alias="FAULTS_ENABLED")

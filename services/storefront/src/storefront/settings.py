from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class StorefrontSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STOREFRONT_")

    state_store: str = "orderstore"
    inventory_app_id: str = "inventory"
    payments_app_id: str = "payments"
    # How often owed compensations are tried again (compensation.py).
    compensation_interval_seconds: float = Field(default=5.0, gt=0)
    # The sidecar's metrics, which storefront watches for the outbox spin (watch.py);
    # unset, nothing watches.
    sidecar_metrics_url: str | None = None
    sidecar_watch_seconds: float = Field(default=5.0, gt=0)
    # Periods in a row a spinning sidecar may spin before it is asked to shut down.
    sidecar_spin_checks: int = Field(default=3, ge=1)
    # Below the sidecar's CPU limit on Kubernetes (500m), which caps a spin there.
    sidecar_busy_cores: float = Field(default=0.25, gt=0)
    # Guards the fault admin routes; without it, or without FAULTS_ENABLED, they are not
    # mounted (orderflow_common.faultadmin).
    fault_token: SecretStr | None = None
    # The services whose flags those routes set (a JSON list): the local stack and the
    # chaos overlay pass the registry's (dapr.yaml).
    fault_services: tuple[str, ...] = ()

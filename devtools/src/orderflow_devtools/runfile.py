"""Read the Dapr multi-app run file (``dapr.yaml``) into typed app definitions.

dapr.yaml is also the registry of services: the one file that names them and their
ports. What cannot read it (the Kubernetes and Dapr YAML, pyproject.toml, the README) is
checked against it by tests/manifests/test_registry.py.

We read the subset of the format that orderflow uses; a field we do not know is an error,
so that a typo cannot silently change what runs.
https://docs.dapr.io/developing-applications/local-development/multi-app-dapr-run/multi-app-template/
"""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

REGISTRY = Path(__file__).resolve().parents[3] / "dapr.yaml"


class RunFileError(Exception):
    """The run file cannot be used; the message is the one-line cause."""


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    resources_path: str = Field(alias="resourcesPath")
    config_file_path: str = Field(alias="configFilePath")
    app_protocol: Literal["http"] = Field(alias="appProtocol")
    app_health_check_path: str = Field(alias="appHealthCheckPath")
    enable_app_health_check: bool = Field(alias="enableAppHealthCheck")
    app_health_probe_interval: PositiveInt = Field(default=5, alias="appHealthProbeInterval")
    api_listen_addresses: str = Field(alias="apiListenAddresses")
    log_level: str = Field(alias="logLevel")
    env: dict[str, str] = {}


class _App(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    app_id: str = Field(alias="appID", pattern=r"^[a-z][a-z0-9-]*$")
    app_dir_path: str = Field(alias="appDirPath")
    app_port: PositiveInt = Field(alias="appPort")
    dapr_http_port: PositiveInt = Field(alias="daprHTTPPort")
    dapr_grpc_port: PositiveInt = Field(alias="daprGRPCPort")
    dapr_internal_grpc_port: PositiveInt = Field(alias="daprInternalGRPCPort")
    metrics_port: PositiveInt = Field(alias="metricsPort")
    app_max_concurrency: PositiveInt | None = Field(default=None, alias="appMaxConcurrency")
    env: dict[str, str] = {}
    command: list[str] = Field(min_length=1)


class _RunFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    common: _Common
    apps: list[_App] = Field(min_length=1)


class App(BaseModel):
    """One app and its sidecar, with the run file's common settings applied and every
    path made absolute."""

    model_config = ConfigDict(frozen=True)

    app_id: str
    directory: Path
    command: tuple[str, ...]
    app_port: int
    dapr_http_port: int
    dapr_grpc_port: int
    dapr_internal_grpc_port: int
    metrics_port: int
    app_max_concurrency: int | None
    resources_path: Path
    config_file: Path
    health_check_path: str
    enable_app_health_check: bool
    health_probe_interval: int
    listen_address: str
    log_level: str
    env: dict[str, str]

    def sidecar_ports(self) -> dict[str, int]:
        """Every port this app's sidecar listens on, by what it is for."""
        return {
            f"{self.app_id} sidecar HTTP API": self.dapr_http_port,
            f"{self.app_id} sidecar gRPC API": self.dapr_grpc_port,
            f"{self.app_id} sidecar internal gRPC": self.dapr_internal_grpc_port,
            f"{self.app_id} sidecar metrics": self.metrics_port,
        }

    def app_env(self) -> dict[str, str]:
        """The variables ``dapr run`` gives an app, plus the run file's own."""
        return {
            **self.env,
            "APP_ID": self.app_id,
            "APP_PORT": str(self.app_port),
            "DAPR_HTTP_PORT": str(self.dapr_http_port),
            "DAPR_GRPC_PORT": str(self.dapr_grpc_port),
            "DAPR_METRICS_PORT": str(self.metrics_port),
        }

    def daprd_args(self) -> list[str]:
        """daprd's flags for this app, every listener on the run file's address.
        https://docs.dapr.io/reference/arguments-annotations-overview/"""
        address = self.listen_address
        args = [
            f"--app-id={self.app_id}",
            f"--app-port={self.app_port}",
            "--app-protocol=http",
            f"--dapr-http-port={self.dapr_http_port}",
            f"--dapr-grpc-port={self.dapr_grpc_port}",
            f"--dapr-internal-grpc-port={self.dapr_internal_grpc_port}",
            f"--metrics-port={self.metrics_port}",
            f"--dapr-listen-addresses={address}",
            f"--dapr-internal-grpc-listen-address={address}",
            f"--metrics-listen-address={address}",
            f"--resources-path={self.resources_path}",
            f"--config={self.config_file}",
            f"--log-level={self.log_level}",
            f"--app-health-check-path={self.health_check_path}",
            f"--app-health-probe-interval={self.health_probe_interval}",
        ]
        if self.enable_app_health_check:
            args.append("--enable-app-health-check")
        if self.app_max_concurrency is not None:
            args.append(f"--app-max-concurrency={self.app_max_concurrency}")
        return args


def load(path: Path) -> list[App]:
    try:
        raw = yaml.safe_load(path.read_text())
        parsed = _RunFile.model_validate(raw)
    except OSError as error:
        raise RunFileError(f"{path}: cannot read it: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise RunFileError(f"{path}: not valid YAML: {_one_line(str(error))}") from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RunFileError(f"{path}: {where}: {first['msg']}") from error
    base = path.parent.resolve()
    common = parsed.common
    apps = [
        App(
            app_id=app.app_id,
            directory=base / app.app_dir_path,
            command=tuple(app.command),
            app_port=app.app_port,
            dapr_http_port=app.dapr_http_port,
            dapr_grpc_port=app.dapr_grpc_port,
            dapr_internal_grpc_port=app.dapr_internal_grpc_port,
            metrics_port=app.metrics_port,
            app_max_concurrency=app.app_max_concurrency,
            resources_path=base / common.resources_path,
            config_file=base / common.config_file_path,
            health_check_path=common.app_health_check_path,
            enable_app_health_check=common.enable_app_health_check,
            health_probe_interval=common.app_health_probe_interval,
            listen_address=common.api_listen_addresses,
            log_level=common.log_level,
            env={**common.env, **app.env},
        )
        for app in parsed.apps
    ]
    ids = [app.app_id for app in apps]
    duplicates = sorted({app_id for app_id in ids if ids.count(app_id) > 1})
    if duplicates:
        raise RunFileError(f"{path}: app ids used twice: {', '.join(duplicates)}")
    for app in apps:
        if not app.directory.is_dir():
            raise RunFileError(f"{path}: {app.app_id}: appDirPath {app.directory} does not exist")
    return apps


def _one_line(text: str) -> str:
    return " ".join(text.split())


def app_ids(path: Path = REGISTRY) -> tuple[str, ...]:
    """The services, in the registry's order."""
    return tuple(app.app_id for app in load(path))

"""Reading dapr.yaml: the real file loads, and each kind of mistake is one readable line."""

from pathlib import Path

import pytest
import yaml

from orderflow_devtools import runfile

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "dapr.yaml"
    path.write_text(yaml.safe_dump(content) if not isinstance(content, str) else content)
    return path


def real() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((REPO / "dapr.yaml").read_text())
    return loaded


def test_the_committed_run_file_loads_with_distinct_ports() -> None:
    apps = runfile.load(REPO / "dapr.yaml")

    assert [app.app_id for app in apps] == [
        "storefront",
        "inventory",
        "payments",
        "fulfillment",
        "notifications",
    ]
    ports = [app.app_port for app in apps] + [
        port for app in apps for port in app.sidecar_ports().values()
    ]
    assert len(ports) == len(set(ports))
    assert all(app.directory == REPO / "services" / app.app_id for app in apps)
    assert all(app.listen_address == "127.0.0.1" for app in apps)


def test_daprd_arguments_keep_every_listener_on_loopback() -> None:
    storefront = runfile.load(REPO / "dapr.yaml")[0]

    args = storefront.daprd_args()

    assert "--dapr-listen-addresses=127.0.0.1" in args
    assert "--dapr-internal-grpc-listen-address=127.0.0.1" in args
    assert "--metrics-listen-address=127.0.0.1" in args
    assert f"--config={REPO / 'deploy/dapr/config.yaml'}" in args


def test_an_unknown_field_is_named(tmp_path: Path) -> None:
    content = real()
    content["apps"][0]["appPrt"] = 1  # type: ignore[index]

    with pytest.raises(runfile.RunFileError, match=r"dapr.yaml: apps\.0\.appPrt: Extra inputs"):
        runfile.load(write(tmp_path, content))


def test_an_app_id_used_twice_is_refused(tmp_path: Path) -> None:
    content = real()
    apps = content["apps"]
    assert isinstance(apps, list)
    apps[1]["appID"] = "storefront"
    for app in apps:
        app["appDirPath"] = str(REPO / app["appDirPath"])

    with pytest.raises(runfile.RunFileError, match=r"app ids used twice: storefront$"):
        runfile.load(write(tmp_path, content))


def test_broken_yaml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(runfile.RunFileError) as caught:
        runfile.load(write(tmp_path, "version: 1\napps: [\n"))

    assert "not valid YAML" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(runfile.RunFileError, match="cannot read it: No such file"):
        runfile.load(tmp_path / "dapr.yaml")

"""Checking deploy/dapr before anything starts."""

import shutil
from pathlib import Path

import pytest

from orderflow_devtools import resources

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "dapr"
    shutil.copytree(REPO / "deploy" / "dapr", target)
    return target


def test_the_committed_resources_load_and_give_the_local_addresses() -> None:
    loaded = resources.load(REPO / "deploy/dapr", REPO / "deploy/dapr/config.yaml")

    assert sorted((d["kind"], d["metadata"]["name"]) for d in loaded.documents) == [
        ("Component", "configstore"),
        ("Component", "faultflags"),
        ("Component", "orderstore"),
        ("Component", "outbox"),
        ("Component", "pubsub"),
        ("Component", "statestore"),
        ("Configuration", "orderflow"),
        ("Resiliency", "orderflow"),
        ("Subscription", "fulfillment-order-placed"),
        ("Subscription", "notifications-dead-letters"),
        ("Subscription", "notifications-order-placed"),
        ("Subscription", "notifications-order-shipped"),
        ("Subscription", "storefront-customer-notified"),
        ("Subscription", "storefront-order-shipped"),
    ]
    assert loaded.redis_port == 6380
    assert loaded.otlp_grpc_port == 4317
    # The two apps that storefront calls have their own policy, which admits storefront.
    assert {
        app_id: [policy["appId"] for policy in doc["spec"]["accessControl"]["policies"]]
        for app_id, doc in loaded.access_control.items()
    } == {"inventory": ["storefront"], "payments": ["storefront"]}


@pytest.mark.parametrize(
    ("replace", "by", "cause"),
    [
        ("kind: Component", "kind: Componnet", "kind 'Componnet' is not one of"),
        ("apiVersion: dapr.io/v1alpha1", "apiVersion: v1", "apiVersion 'v1' is not a dapr.io"),
        ("  name: pubsub\n", "  labels: {}\n", "a Component has no metadata.name"),
        ("spec:\n  type: pubsub.redis", "spec:\n  - type: [", "not valid YAML"),
        ('"127.0.0.1:6380"', '"127.0.0.1:6381"', "must share one redisHost"),
    ],
)
def test_a_broken_file_is_one_line_naming_it(copy: Path, replace: str, by: str, cause: str) -> None:
    pubsub = copy / "pubsub.yaml"
    text = pubsub.read_text()
    assert replace in text
    pubsub.write_text(text.replace(replace, by, 1))

    with pytest.raises(resources.ResourceError) as caught:
        resources.load(copy, copy / "config.yaml")

    assert cause in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_resource_defined_twice_is_refused(copy: Path) -> None:
    shutil.copy(copy / "pubsub.yaml", copy / "pubsub-again.yaml")

    twice = r"defined more than once: Component/outbox, Component/pubsub$"
    with pytest.raises(resources.ResourceError, match=twice):
        resources.load(copy, copy / "config.yaml")


def test_a_redis_address_without_a_port_is_refused(copy: Path) -> None:
    for path in copy.glob("*.yaml"):
        path.write_text(path.read_text().replace('"127.0.0.1:6380"', '"127.0.0.1"'))

    with pytest.raises(resources.ResourceError, match=r"redisHost '127.0.0.1' is not host:port$"):
        resources.load(copy, copy / "config.yaml")


@pytest.mark.parametrize(
    ("replace", "by", "cause"),
    [
        ("  name: payments\n", "  name: pay\n", "the Configuration must be named 'payments'"),
        ("spec:\n", "spec:\n  tracing: {samplingRate: '0'}\n", "spec must hold accessControl"),
        ("kind: Configuration", "kind: Resiliency", "expected one Configuration"),
    ],
)
def test_an_access_control_file_holds_one_policy_for_the_app_it_is_named_for(
    copy: Path, replace: str, by: str, cause: str
) -> None:
    policy = copy / "access-control" / "payments.yaml"
    text = policy.read_text()
    assert replace in text
    policy.write_text(text.replace(replace, by, 1))

    with pytest.raises(resources.ResourceError) as caught:
        resources.load(copy, copy / "config.yaml")

    assert str(caught.value) == f"{policy}: {cause}" + (
        " and nothing else" if "accessControl" in cause else ""
    )

"""mTLS between the sidecars, on the wire, against the real daprd and sentry: each
sidecar's internal gRPC port refuses a plaintext client and a TLS client without a
certificate of sentry's, and serves a certificate sentry issued for its app id. Sentry
runs in a network namespace of its own, reached only through a Unix socket in a 0700
directory, and keeps the trust bundle it generated on its first start."""

import socket
import ssl
import stat
from pathlib import Path

import grpc
import pytest

from orderflow_devtools.stack import SENTRY_GRPC_PORT, SENTRY_HEALTH_PORT, LocalStack, Sentry

pytestmark = pytest.mark.integration

APPS = ("storefront", "inventory", "payments", "fulfillment", "notifications")
# The method one sidecar calls on another's internal gRPC port
# (dapr/proto/internals/v1/service_invocation.proto).
CALL_LOCAL = "/dapr.proto.internals.v1.ServiceInvocation/CallLocal"


@pytest.fixture(scope="module")
def sentry(local_stack: LocalStack) -> Sentry:
    """The stack's sentry, found from the trust anchors its sidecars are given."""
    anchors = local_stack.stack.processes["storefront-dapr"].env_files["DAPR_TRUST_ANCHORS"]
    return Sentry(credentials=anchors.parent, socket=sentry_socket(local_stack))


def sentry_socket(local_stack: LocalStack) -> Path:
    (address,) = [
        arg.removeprefix("--sentry-address=unix://")
        for arg in local_stack.stack.processes["storefront-dapr"].argv
        if arg.startswith("--sentry-address=")
    ]
    return Path(address)


def call_local(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    """The status of an empty CallLocal to ``port``, plaintext without ``credentials``."""
    target = f"127.0.0.1:{port}"
    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        try:
            # No (de)serializers: the request is raw bytes, an empty message.
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CALL_LOCAL)
            call(b"", timeout=5)
        except grpc.RpcError as failure:
            return failure.code()
    return grpc.StatusCode.OK


def test_the_internal_grpc_port_refuses_a_plaintext_client(local_stack: LocalStack) -> None:
    for app_id in APPS:
        app = local_stack.apps[app_id]
        # The public gRPC API, plaintext on loopback, answers the same client: it refuses
        # a call without the Dapr API token, where the internal port does not even talk.
        assert call_local(app.dapr_grpc_port, None) == grpc.StatusCode.UNAUTHENTICATED
        assert call_local(app.dapr_internal_grpc_port, None) == grpc.StatusCode.UNAVAILABLE


@pytest.fixture
def tls_without_certificate(sentry: Sentry) -> ssl.SSLContext:
    """A TLS client that trusts sentry's root but has no certificate of its own."""
    context = ssl.create_default_context(cafile=str(sentry.trust_anchors))
    # The sidecars' certificates name a SPIFFE id, no host.
    context.check_hostname = False
    context.set_alpn_protocols(["h2"])
    return context


def test_each_sidecar_serves_its_sentry_identity_and_wants_one_back(
    local_stack: LocalStack, tls_without_certificate: ssl.SSLContext
) -> None:
    for app_id in APPS:
        port = local_stack.apps[app_id].dapr_internal_grpc_port
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            tls_without_certificate.wrap_socket(raw) as tls,
        ):
            # The handshake verified the sidecar's chain against sentry's root.
            certificate = tls.getpeercert()
            assert certificate is not None
            assert certificate["subjectAltName"] == (
                ("URI", f"spiffe://public/ns/orderflow/{app_id}"),
            )
            # TLS 1.3: the server refuses the missing client certificate after the
            # client's side of the handshake, on the first read.
            with pytest.raises(ssl.SSLError) as refused:
                tls.recv(1)
            assert refused.value.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED"


def test_grpc_over_tls_without_a_client_certificate_is_refused(
    local_stack: LocalStack, sentry: Sentry
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=sentry.trust_anchors.read_bytes())
    port = local_stack.apps["payments"].dapr_internal_grpc_port
    # Without a host name in the sidecar's certificate gRPC cannot verify it either: the
    # call fails whichever side gives up first.
    assert call_local(port, credentials) == grpc.StatusCode.UNAVAILABLE


def test_sentry_is_alone_in_a_network_namespace_with_only_loopback(
    local_stack: LocalStack, sentry: Sentry
) -> None:
    pid = local_stack.stack.pids()["sentry"]
    proc = Path(f"/proc/{pid}")

    assert (proc / "ns/net").readlink() != Path("/proc/self/ns/net").readlink()
    devices = (proc / "net/dev").read_text().splitlines()[2:]
    interfaces = [line.split(":")[0].strip() for line in devices]
    assert interfaces == ["lo"]
    # No route at all: a header line and nothing else.
    assert len((proc / "net/route").read_text().splitlines()) == 1
    assert listening(proc / "net/tcp") | listening(proc / "net/tcp6") == {
        ("0100007F", SENTRY_GRPC_PORT),
        # The health server that binds every interface: every interface here is loopback.
        ("00000000000000000000000000000000", SENTRY_HEALTH_PORT),
    }
    assert stat.S_IMODE(sentry.socket.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(sentry.socket.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(sentry.socket.stat().st_mode)


def listening(table: Path) -> set[tuple[str, int]]:
    """(hex address, port) of each TCP socket listening in a /proc/<pid>/net table."""
    rows = [line.split() for line in table.read_text().splitlines()[1:]]
    return {
        (local.split(":")[0], int(local.split(":")[1], 16))
        for _, local, _, state, *_ in rows
        if state == "0A"
    }


def test_the_trust_bundle_made_on_first_start_outlives_a_sentry_restart(
    local_stack: LocalStack, sentry: Sentry
) -> None:
    files = ("ca.crt", "issuer.crt", "issuer.key")
    before = {name: (sentry.credentials / name).read_bytes() for name in files}

    local_stack.stack.kill("sentry")
    local_stack.restart(["sentry"])

    assert {name: (sentry.credentials / name).read_bytes() for name in files} == before
    assert stat.S_IMODE(sentry.credentials.stat().st_mode) == 0o700

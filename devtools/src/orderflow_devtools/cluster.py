"""A real Kubernetes control plane as processes on 127.0.0.1, for `orderflow cluster up`
and the tests in tests/kubernetes: the embedded default for everything Kubernetes, as the
local stack is for Dapr.

What is real: etcd, kube-apiserver (admission: Pod Security, the Dapr webhook, strict field
validation, CRD schemas), kube-controller-manager (Deployments, ReplicaSets, the HPA
controller), kube-scheduler, metrics-server (the metrics API), Dapr's sentry and sidecar
injector. What is simulated: the one node. kwok plays its kubelet: pods are scheduled, get
a made-up IP and become Running and Ready, but no container runs, so no image is pulled,
no probe is made and no NetworkPolicy is enforced (there is no CNI). Each pod's CPU and
memory use is what a kwok ClusterResourceUsage says, which is how tests drive the HPAs.

Every listener is in 20000-20999 and on 127.0.0.1, except three that Dapr 1.18.2 binds on
all interfaces whatever it is told: the injector's webhook and health servers, and
sentry's health server (tests/kubernetes/test_cluster.py). Sentry resolves the cluster
domain from a hosts file of its own (_with_name_files), not through the machine's DNS.
The made-up pod and Service addresses are never dialled: webhooks and the metrics API are
reached through ExternalName Services that name localhost.
https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/
"""

import base64
import json
import os
import platform
import shutil
import ssl
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import httpx
import yaml

from orderflow_devtools.observe import eventually
from orderflow_devtools.stack import LOOPBACK, Probe, Process, Stack
from orderflow_devtools.tools import (
    DAPR_VERSION,
    KWOK_VERSION,
    ClusterTools,
    go_module_dir,
)

CONTEXT = "orderflow-local"
NODE = "orderflow-node"
DAPR_NAMESPACE = "dapr-system"
INJECTOR_POD = "dapr-sidecar-injector-local"
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
# kube-prometheus-stack 79.x ships an older operator; the monitoring.coreos.com/v1 kinds we
# use are unchanged since. 0.94.1 is the newest release the Go module proxy serves.
PROMETHEUS_OPERATOR_VERSION = "0.94.1"

# What listens where (three of Dapr's on every interface, see above).
PORTS = {
    "etcd": 20379,
    "etcd-peer": 20380,
    "kube-apiserver": 20443,
    "metrics-server": 20444,
    "kwok": 20250,
    "kube-controller-manager": 20257,
    "kube-scheduler": 20259,
    "dapr-injector": 20440,
    "dapr-injector-health": 20441,
    "dapr-sentry": 20501,
    "dapr-sentry-health": 20502,
}
API_SERVER = f"https://{LOOPBACK}:{PORTS['kube-apiserver']}"
# kube-controller-manager acts as one service account per controller, so the Dapr injector
# can tell the workload controllers' requests (which it mutates) from anyone else's. It
# reads their UIDs once, at start, so they must exist by then.
WORKLOAD_CONTROLLERS = (
    "replicaset-controller",
    "deployment-controller",
    "statefulset-controller",
    "daemon-set-controller",
    "job-controller",
    "cronjob-controller",
)
# The HPA controller looks at its HPAs every 15s by default; every 5s here, so the tests'
# scaling sequences take seconds, not minutes (docs/kubernetes.md).
HPA_SYNC_PERIOD = "5s"


# What `orderflow cluster up` and `orderflow status` say about it, plainly.
SIMULATED = (
    "simulated: the node (kwok) runs no container, so images are not built or pulled,"
    " probes are not made, NetworkPolicies are stored but not enforced (no CNI), and CPU"
    " use is what a kwok ClusterResourceUsage says; Grafana and Prometheus are not deployed"
)


def dapr_chart() -> Path:
    """Dapr's Helm chart as the dapr Go module publishes it, for skaffold's local profile
    where the Helm repository cannot be reached."""
    return go_module_dir("github.com/dapr/dapr", DAPR_VERSION) / "charts/dapr"


class ClusterError(Exception):
    """The control plane cannot start, or a call to it failed; the message is the cause."""


class Pki:
    """Certificates made with openssl: one CA for everything, a serving certificate for
    the loopback listeners, the admin's client certificate (system:masters), the service
    account signing key, and the aggregation layer's front proxy."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str) -> Path:
        return self.dir / name

    def create(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca("ca", "orderflow-local-ca")
        self._ca("front-proxy-ca", "orderflow-local-front-proxy-ca")
        self.sign(
            "serving",
            "ca",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
            # The aggregation layer checks metrics-server by its Service name.
            "DNS:metrics-server.kube-system.svc\n"
            "extendedKeyUsage=serverAuth",
        )
        self.sign(
            "admin", "ca", "/O=system:masters/CN=orderflow-admin", "extendedKeyUsage=clientAuth"
        )
        self.sign(
            "front-proxy-client",
            "front-proxy-ca",
            "/CN=front-proxy-client",
            "extendedKeyUsage=clientAuth",
        )
        _openssl("genrsa", "-out", str(self.path("sa.key")), "2048")
        _openssl(
            "rsa", "-in", str(self.path("sa.key")), "-pubout", "-out", str(self.path("sa.pub"))
        )

    def _ca(self, name: str, common_name: str) -> None:
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            f"/CN={common_name}",
            "-keyout",
            str(self.path(f"{name}.key")),
            "-out",
            str(self.path(f"{name}.crt")),
        )

    def sign(self, name: str, ca: str, subject: str, extensions: str) -> None:
        key, csr = self.path(f"{name}.key"), self.path(f"{name}.csr")
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            str(key),
            "-out",
            str(csr),
        )
        extfile = self.path(f"{name}.ext")
        extfile.write_text(extensions + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.path(f"{ca}.crt")),
            "-CAkey",
            str(self.path(f"{ca}.key")),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            str(extfile),
            "-out",
            str(self.path(f"{name}.crt")),
        )


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ClusterError("openssl is not on PATH: install it (Debian: apt-get install openssl)")
    result = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {result.stderr.strip().splitlines()[-1]}")


class LocalCluster:
    """The control plane of one run directory: ``start`` provisions nothing (pass the
    built tools), makes the certificates, starts every process in order and waits for
    each; ``stop`` ends them all and keeps the logs."""

    # The kubeconfig's context name, by which skaffold picks its profile, and server.
    context = CONTEXT
    api_server = API_SERVER

    def __init__(self, tools: ClusterTools, run_dir: Path, out: IO[str]) -> None:
        self.tools = tools
        self.run_dir = run_dir
        self.pki = Pki(run_dir / "pki")
        self.kubeconfig = run_dir / "kubeconfig"
        self.stack = Stack(self._processes(), out)
        self._tls_context: ssl.SSLContext | None = None

    @property
    def _tls(self) -> ssl.SSLContext:
        """Trusts the cluster's CA and presents the admin's certificate (made by start)."""
        if self._tls_context is None:
            context = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
            context.load_cert_chain(self.pki.path("admin.crt"), self.pki.path("admin.key"))
            self._tls_context = context
        return self._tls_context

    # --- talking to it --------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """Run the cluster's kubectl against it; a failure is a ClusterError with
        kubectl's own last line."""
        result = subprocess.run(
            [str(self.tools.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise ClusterError(f"kubectl {' '.join(args[:2])}: {lines[-1] if lines else 'failed'}")
        return result.stdout

    def get(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, objects: list[dict[str, Any]]) -> None:
        """Server-side apply, as the cluster's own field manager."""
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager=orderflow-cluster",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(objects),
        )

    def rolled_out(self, namespace: str, timeout: float = 120) -> list[dict[str, Any]]:
        """Wait until every Deployment in ``namespace`` is Available with all its replicas
        updated (none of an older ReplicaSet left), and return them."""
        self.kubectl(
            "wait", "--for=condition=Available", "deployment", "--all",
            f"--namespace={namespace}", f"--timeout={timeout:.0f}s",
        )  # fmt: skip

        def settled() -> list[dict[str, Any]]:
            with self.http() as http:
                path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
                items: list[dict[str, Any]] = http.get(path).json()["items"]
            done = all(
                d["status"].get(field) == d["spec"]["replicas"]
                for d in items
                for field in ("replicas", "updatedReplicas", "availableReplicas")
            )
            return items if done else []

        return eventually(settled, f"every Deployment in {namespace} rolled out", timeout)

    def http(self) -> httpx.Client:
        """An HTTP client for the API server, as the admin (its client certificate)."""
        return api_client(self.kubeconfig)

    # --- lifecycle --------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        self.stack.check_ports(self.stack.processes)
        (self.run_dir / "sentry").mkdir(parents=True, exist_ok=True)
        _write_name_files(self.run_dir / "sentry-etc")
        self.pki.create()
        self._write_kubeconfig()
        for step in (
            ("etcd", "kube-apiserver"),
            self._bootstrap,
            ("kube-controller-manager", "kube-scheduler", "kwok"),
            self._metrics,
            ("metrics-server", "dapr-sentry"),
            self._injector_credentials,
            ("dapr-injector",),
        ):
            remaining = max(1.0, deadline - time.monotonic())
            if callable(step):
                step()
            else:
                self.stack.start(step, timeout=remaining)
        self._wait_for(
            "the metrics API (APIService v1beta1.metrics.k8s.io Available)",
            self._metrics_api_available,
            deadline,
        )

    def stop(self) -> None:
        self.stack.stop(grace=10.0)

    def _wait_for(self, what: str, ready: Probe, deadline: float) -> None:
        while not ready():
            if time.monotonic() > deadline:
                raise ClusterError(f"not ready in time: {what}")
            time.sleep(0.2)

    # --- the processes ----------------------------------------------------------------

    def _processes(self) -> list[Process]:
        tools, pki, run = self.tools, self.pki, self.run_dir
        kubeconfig = f"--kubeconfig={self.kubeconfig}"
        serving = [
            f"--tls-cert-file={pki.path('serving.crt')}",
            f"--tls-private-key-file={pki.path('serving.key')}",
        ]

        def component(name: str) -> list[str]:
            """What every Kubernetes component here is given: the admin's kubeconfig (for
            its work and to check who calls it), and its HTTPS port on loopback."""
            return [
                kubeconfig,
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={PORTS[name]}",
                *serving,
            ]

        etcd = f"http://{LOOPBACK}:{PORTS['etcd']}"
        peer = f"http://{LOOPBACK}:{PORTS['etcd-peer']}"
        return [
            Process(
                name="etcd",
                argv=[
                    str(tools.etcd),
                    f"--data-dir={run / 'etcd'}",
                    f"--listen-client-urls={etcd}",
                    f"--advertise-client-urls={etcd}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=default={peer}",
                    # A throwaway cluster: losing it to a power cut costs nothing, and
                    # fsync on every write would slow every test that applies objects.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
                cwd=run,
                ready=_http_ok(f"{etcd}/health"),
                ports=_ports("etcd", "etcd-peer"),
            ),
            Process(
                name="kube-apiserver",
                argv=[
                    str(tools.kube_apiserver),
                    f"--etcd-servers={etcd}",
                    f"--bind-address={LOOPBACK}",
                    f"--advertise-address={LOOPBACK}",
                    f"--secure-port={PORTS['kube-apiserver']}",
                    *serving,
                    f"--client-ca-file={pki.path('ca.crt')}",
                    f"--service-account-key-file={pki.path('sa.pub')}",
                    f"--service-account-signing-key-file={pki.path('sa.key')}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    "--authorization-mode=Node,RBAC",
                    "--service-cluster-ip-range=10.96.0.0/16",
                    # The `kubernetes` Service would list 127.0.0.1 as its endpoint, which
                    # Endpoints validation refuses: nothing in the cluster needs it.
                    "--endpoint-reconciler-type=none",
                    # The aggregation layer, for metrics-server's APIService.
                    f"--requestheader-client-ca-file={pki.path('front-proxy-ca.crt')}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={pki.path('front-proxy-client.crt')}",
                    f"--proxy-client-key-file={pki.path('front-proxy-client.key')}",
                    # kubectl logs reaches kwok's simulated kubelet on the node's address.
                    "--kubelet-preferred-address-types=InternalIP",
                    f"--kubelet-certificate-authority={pki.path('ca.crt')}",
                    f"--kubelet-client-certificate={pki.path('admin.crt')}",
                    f"--kubelet-client-key={pki.path('admin.key')}",
                    "--profiling=false",
                ],
                cwd=run,
                ready=self._api_ready,
                ports=_ports("kube-apiserver"),
            ),
            Process(
                name="kube-controller-manager",
                argv=[
                    str(tools.kube_controller_manager),
                    *component("kube-controller-manager"),
                    "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={pki.path('sa.key')}",
                    f"--root-ca-file={pki.path('ca.crt')}",
                    f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD}",
                    "--profiling=false",
                ],
                cwd=run,
                ready=self._controllers_acting,
                ports=_ports("kube-controller-manager"),
            ),
            Process(
                name="kube-scheduler",
                argv=[
                    str(tools.kube_scheduler),
                    *component("kube-scheduler"),
                    "--leader-elect=false",
                    "--profiling=false",
                ],
                cwd=run,
                ready=self._healthz(PORTS["kube-scheduler"]),
                ports=_ports("kube-scheduler"),
            ),
            Process(
                name="kwok",
                argv=[
                    str(tools.kwok),
                    kubeconfig,
                    f"--manage-single-node={NODE}",
                    # Heartbeats through a Lease, as a kubelet does: without one the node
                    # lifecycle controller takes the node for gone within a minute and marks
                    # every pod on it unready, which kwok does not undo.
                    "--node-lease-duration-seconds=40",
                    f"--node-ip={LOOPBACK}",
                    f"--node-port={PORTS['kwok']}",
                    f"--server-address={LOOPBACK}:{PORTS['kwok']}",
                    *serving,
                    # Pod addresses are made up and never dialled (module docstring).
                    "--cidr=10.244.0.0/16",
                    # Read the simulated usage and the metrics endpoint from the API, so a
                    # test can change a pod's CPU while the cluster runs.
                    "--enable-crds=Metric,ClusterResourceUsage,ResourceUsage",
                ],
                cwd=run,
                ready=self._node_ready,
                ports=_ports("kwok"),
            ),
            Process(
                name="metrics-server",
                argv=[
                    str(tools.metrics_server),
                    *component("metrics-server"),
                    "--kubelet-preferred-address-types=InternalIP",
                    "--kubelet-use-node-status-port",
                    f"--kubelet-certificate-authority={pki.path('ca.crt')}",
                    f"--kubelet-client-certificate={pki.path('admin.crt')}",
                    f"--kubelet-client-key={pki.path('admin.key')}",
                    # The fastest it allows: the HPA sees a change within ~10s.
                    "--metric-resolution=10s",
                    "--kubelet-request-timeout=5s",
                ],
                cwd=run,
                # /readyz waits for a first scrape with data, which an empty node never gives.
                ready=self._healthz(PORTS["metrics-server"], "/livez"),
                ports=_ports("metrics-server"),
            ),
            Process(
                name="dapr-sentry",
                argv=[
                    *_with_name_files(run / "sentry-etc"),
                    str(tools.sentry),
                    "--mode=kubernetes",
                    kubeconfig,
                    f"--issuer-credentials={run / 'sentry'}",
                    "--trust-domain=cluster.local",
                    f"--listen-address={LOOPBACK}",
                    f"--port={PORTS['dapr-sentry']}",
                    f"--healthz-listen-address={LOOPBACK}",
                    f"--healthz-port={PORTS['dapr-sentry-health']}",
                    "--enable-metrics=false",
                ],
                cwd=run,
                ready=_http_ok(f"http://{LOOPBACK}:{PORTS['dapr-sentry-health']}/healthz"),
                ports=_ports("dapr-sentry", "dapr-sentry-health"),
                env={
                    "NAMESPACE": DAPR_NAMESPACE,
                    # Sentry and the injector refuse to run as root (as anyone may run the
                    # tests here) unless told that this is on purpose.
                    "DAPR_UNSAFE_SKIP_CONTAINER_UID_GID_CHECK": "true",
                },
            ),
            Process(
                name="dapr-injector",
                argv=[
                    str(tools.injector),
                    kubeconfig,
                    f"--listen-address={LOOPBACK}",
                    f"--port={PORTS['dapr-injector']}",
                    f"--healthz-port={PORTS['dapr-injector-health']}",
                    "--enable-metrics=false",
                ],
                cwd=run,
                ready=_http_ok(f"http://{LOOPBACK}:{PORTS['dapr-injector-health']}/healthz"),
                ports=_ports("dapr-injector", "dapr-injector-health"),
                env={
                    "NAMESPACE": DAPR_NAMESPACE,
                    "DAPR_UNSAFE_SKIP_CONTAINER_UID_GID_CHECK": "true",
                    "KUBE_CLUSTER_DOMAIN": "cluster.local",
                    "SIDECAR_IMAGE": f"ghcr.io/dapr/daprd:{DAPR_VERSION}",
                    # Without it the injected daprd keeps its capabilities, and Pod
                    # Security "restricted" refuses every Dapr pod (skaffold.yaml sets the
                    # same in the Helm chart: dapr_sidecar_injector.sidecarDropALLCapabilities).
                    "SIDECAR_DROP_ALL_CAPABILITIES": "true",
                    # The injector's own certificate comes from sentry, with the token
                    # and trust anchors that _injector_credentials wrote (in a pod: a
                    # projected token and the dapr-trust-bundle ConfigMap).
                    "DAPR_SENTRY_ADDRESS": f"{LOOPBACK}:{PORTS['dapr-sentry']}",
                    "DAPR_SENTRY_TOKEN_FILE": str(run / "injector.token"),
                    "DAPR_TRUST_ANCHORS_FILE": str(run / "trust-anchors.crt"),
                    "DAPR_CONTROL_PLANE_TRUST_DOMAIN": "cluster.local",
                },
            ),
        ]

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": self.context,
                            "cluster": {
                                "server": self.api_server,
                                "certificate-authority": str(self.pki.path("ca.crt")),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": "orderflow-admin",
                            "user": {
                                "client-certificate": str(self.pki.path("admin.crt")),
                                "client-key": str(self.pki.path("admin.key")),
                            },
                        }
                    ],
                    "contexts": [
                        {
                            "name": self.context,
                            "context": {"cluster": self.context, "user": "orderflow-admin"},
                        }
                    ],
                    "current-context": self.context,
                }
            )
        )

    # --- readiness ----------------------------------------------------------------------

    def _api_ready(self) -> bool:
        try:
            with self.http() as http:
                return http.get("/readyz").status_code == httpx.codes.OK
        except httpx.TransportError:
            return False

    def _healthz(self, port: int, path: str = "/healthz") -> Probe:
        def probe() -> bool:
            try:
                response = httpx.get(
                    f"https://{LOOPBACK}:{port}{path}", verify=self._tls, timeout=2
                )
            except httpx.TransportError:
                return False
            return response.status_code == httpx.codes.OK

        return probe

    def _controllers_acting(self) -> bool:
        with self.http() as http:
            accounts = http.get("/api/v1/namespaces/kube-system/serviceaccounts").json()
        names = {item["metadata"]["name"] for item in accounts.get("items", [])}
        return set(WORKLOAD_CONTROLLERS) <= names

    def _node_ready(self) -> bool:
        with self.http() as http:
            response = http.get(f"/api/v1/nodes/{NODE}")
        if response.status_code != httpx.codes.OK:
            return False
        conditions = response.json().get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _metrics_api_available(self) -> bool:
        with self.http() as http:
            response = http.get(
                "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io"
            )
        conditions = response.json().get("status", {}).get("conditions", [])
        return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

    # --- what the cluster holds before anyone deploys ---------------------------------

    def _bootstrap(self) -> None:
        """CRDs (Dapr's, the Prometheus operator's kinds we use, kwok's), the node, and
        the registrations of the local processes: the Dapr webhook and the metrics API."""
        for path in crd_files():
            self.kubectl(
                "apply", "--server-side", "--field-manager=orderflow-cluster", "-f", str(path)
            )
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.apply(bootstrap_objects(self.pki.path("ca.crt").read_text()))

    def _metrics(self) -> None:
        """What kwok reports: the kubelet's resource metrics endpoint that metrics-server
        scrapes (kwok's own definition, as its metrics-server setup uses it), and what
        every container uses until a test says otherwise: 1m of CPU and 16Mi of memory."""
        kwok = go_module_dir("sigs.k8s.io/kwok", KWOK_VERSION)
        metrics = kwok / "kustomize/metrics/resource/metrics-resource.yaml"
        self.kubectl(
            "apply", "--server-side", "--field-manager=orderflow-cluster", "-f", str(metrics)
        )
        self.apply([usage("baseline", cpu="1m", memory="16Mi")])

    def _injector_credentials(self) -> None:
        """What a pod of the injector would have mounted: a token for the dapr-injector
        service account with sentry's audience, and the trust anchors that sentry has
        just written to the dapr-trust-bundle ConfigMap."""
        deadline = time.monotonic() + 30
        anchors = ""
        while not anchors:
            bundle = self.get("configmap", "dapr-trust-bundle", "-n", DAPR_NAMESPACE)
            anchors = bundle.get("data", {}).get("ca.crt", "")
            if not anchors:
                if time.monotonic() > deadline:
                    raise ClusterError("sentry wrote no trust anchors to dapr-trust-bundle")
                time.sleep(0.2)
        (self.run_dir / "trust-anchors.crt").write_text(anchors)
        token = self.kubectl(
            "create",
            "token",
            "dapr-injector",
            "-n",
            DAPR_NAMESPACE,
            "--audience=dapr.io/sentry",
            "--bound-object-kind=Pod",
            f"--bound-object-name={INJECTOR_POD}",
            "--duration=24h",
        )
        (self.run_dir / "injector.token").write_text(token.strip())


# In Kubernetes mode sentry learns the cluster domain by looking up the CNAME of
# kubernetes.default.svc with Go's resolver (dapr v1.18.2 utils/resolvconf.go,
# GetKubeClusterDomainFromDNS), which would ask the machine's DNS server, off loopback.
# Go answers it from /etc/hosts first (the canonical name is a line's first name), so sentry
# runs in a mount namespace of its own that sees a hosts file naming the API server, and a
# resolv.conf on loopback for anything else: nothing it resolves leaves 127.0.0.0/8.
# https://man7.org/linux/man-pages/man1/unshare.1.html
_HOSTS = f"""{LOOPBACK} localhost
{LOOPBACK} kubernetes.default.svc.cluster.local kubernetes.default.svc
"""
_RESOLV_CONF = f"nameserver {LOOPBACK}\noptions timeout:1 attempts:1\n"


def _write_name_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts").write_text(_HOSTS)
    (directory / "resolv.conf").write_text(_RESOLV_CONF)


def _with_name_files(directory: Path) -> list[str]:
    """The command prefix that runs a process with ``directory``'s hosts and resolv.conf."""
    # Without root, a user namespace lets the mount namespace be made (and sentry is
    # already told that running as root is on purpose).
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    mounts = 'mount --bind "$0/hosts" /etc/hosts && mount --bind "$0/resolv.conf" /etc/resolv.conf'
    return ["unshare", "--mount", *user, "--", "sh", "-c", f'{mounts} && exec "$@"', str(directory)]


def _ports(*names: str) -> dict[str, int]:
    return {name: PORTS[name] for name in names}


def _http_ok(url: str) -> Probe:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == httpx.codes.OK
        except httpx.TransportError:
            return False

    return probe


def crd_files() -> list[Path]:
    """The CRDs the cluster starts with, from the Go modules that publish them: every
    Dapr kind (the files its Helm chart installs), the two Prometheus operator kinds that
    deploy/components/monitoring uses, and kwok's usage and metrics kinds."""
    dapr = go_module_dir("github.com/dapr/dapr", DAPR_VERSION) / "charts/dapr/crds"
    operator = (
        go_module_dir(
            "github.com/prometheus-operator/prometheus-operator", PROMETHEUS_OPERATOR_VERSION
        )
        / "example/prometheus-operator-crd"
    )
    kwok = go_module_dir("sigs.k8s.io/kwok", KWOK_VERSION) / "kustomize/crd/bases"
    return [
        *sorted(dapr.glob("*.yaml")),
        operator / "monitoring.coreos.com_podmonitors.yaml",
        operator / "monitoring.coreos.com_prometheusrules.yaml",
        *(
            kwok / f"kwok.x-k8s.io_{kind}.yaml"
            for kind in ("metrics", "clusterresourceusages", "resourceusages")
        ),
    ]


def bootstrap_objects(ca_pem: str) -> list[dict[str, Any]]:
    """The node kwok simulates, and the objects through which the API server reaches the
    local processes (and that sentry and the injector need)."""
    helm_owned = (
        "\n  labels: {app.kubernetes.io/managed-by: Helm}"
        "\n  annotations: {meta.helm.sh/release-name: dapr,"
        f" meta.helm.sh/release-namespace: {DAPR_NAMESPACE}}}"
    )
    return [
        doc
        for doc in yaml.safe_load_all(
            f"""
apiVersion: v1
kind: Node
metadata:
  name: {NODE}
  # What a kubelet labels its node with (charts pick nodes by OS).
  labels:
    kubernetes.io/hostname: {NODE}
    kubernetes.io/os: linux
    kubernetes.io/arch: {GOARCH}
    type: kwok
  # kwok serves each node's resource metrics under its own path; metrics-server reads
  # this annotation. https://github.com/kubernetes-sigs/metrics-server
  annotations:
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/{NODE}/metrics/resource
status:
  allocatable: {{cpu: "32", memory: 64Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 64Gi, pods: "110"}}
  addresses: [{{type: InternalIP, address: {LOOPBACK}}}]
  daemonEndpoints: {{kubeletEndpoint: {{Port: {PORTS["kwok"]}}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {DAPR_NAMESPACE}}}
# Objects that Dapr's chart also makes are marked as its release's, so that a Helm install
# of the chart here (skaffold's local profile) adopts them instead of refusing to start.
# https://helm.sh/docs/faq/changes_since_helm2/ (release adoption)
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: dapr-injector
  namespace: {DAPR_NAMESPACE}{helm_owned}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: dapr-sentry
  namespace: {DAPR_NAMESPACE}{helm_owned}
# Sentry keeps its root and issuer in the Secret and publishes the trust anchors in the
# ConfigMap; it fills them, but will not create them.
---
apiVersion: v1
kind: Secret
metadata:
  name: dapr-trust-bundle
  namespace: {DAPR_NAMESPACE}{helm_owned}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: dapr-trust-bundle
  namespace: {DAPR_NAMESPACE}{helm_owned}
# The control plane's settings, which sentry reads at start (as the chart's dapr_config).
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprsystem
  namespace: {DAPR_NAMESPACE}{helm_owned}
spec:
  mtls:
    enabled: true
    workloadCertTTL: 24h
    allowedClockSkew: 15m
    controlPlaneTrustDomain: cluster.local
    sentryAddress: dapr-sentry.{DAPR_NAMESPACE}.svc.cluster.local:443
# The pod a real injector would run in: sentry issues the injector's certificate only for
# a token bound to a pod of the dapr-injector account, and takes the identity it may ask
# for from the pod's app-id. kwok reports it Running; what runs is the local process.
---
apiVersion: v1
kind: Pod
metadata:
  name: {INJECTOR_POD}
  namespace: {DAPR_NAMESPACE}
  labels: {{app: dapr-sidecar-injector}}
  annotations: {{dapr.io/app-id: dapr-injector}}
spec:
  serviceAccountName: dapr-injector
  automountServiceAccountToken: false
  nodeName: {NODE}
  containers: [{{name: dapr-sidecar-injector, image: "ghcr.io/dapr/injector:{DAPR_VERSION}"}}]
# Services that send the API server to a process on this machine.
# https://kubernetes.io/docs/concepts/services-networking/service/#externalname
---
apiVersion: v1
kind: Service
metadata: {{name: dapr-sidecar-injector, namespace: {DAPR_NAMESPACE}}}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{{name: https, port: {PORTS["dapr-injector"]}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: metrics-server, namespace: kube-system}}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{{name: https, port: {PORTS["metrics-server"]}}}]
# As Dapr's chart registers the injector (charts/dapr/charts/dapr_sidecar_injector), but
# through the Service above, and a failure refuses the pod: a test must not pass on a pod
# let through without its sidecar. The injector fills in caBundle itself, with sentry's
# trust anchors. Only the namespaces that run apps: the control plane's stay out.
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: dapr-sidecar-injector}}
webhooks:
  - name: sidecar-injector.dapr.io
    reinvocationPolicy: IfNeeded
    clientConfig:
      service:
        namespace: {DAPR_NAMESPACE}
        name: dapr-sidecar-injector
        path: /mutate
        port: {PORTS["dapr-injector"]}
    rules:
      - {{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}}
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values: [kube-system, {DAPR_NAMESPACE}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.metrics.k8s.io}}
spec:
  service: {{name: metrics-server, namespace: kube-system, port: {PORTS["metrics-server"]}}}
  group: metrics.k8s.io
  version: v1beta1
  caBundle: {base64.b64encode(ca_pem.encode()).decode()}
  groupPriorityMinimum: 100
  versionPriority: 100
"""
        )
        if doc
    ]


def usage(
    name: str, *, cpu: str, memory: str, app_cpu: Mapping[str, str] = MappingProxyType({})
) -> dict[str, Any]:
    """A kwok ClusterResourceUsage: every container uses ``cpu`` and ``memory``, except the
    app container of each service in ``app_cpu``, which uses the CPU given there.
    https://kwok.sigs.k8s.io/docs/user/resource-usage-configuration/"""
    usages: list[dict[str, Any]] = []
    if app_cpu:
        expression = f'Quantity("{cpu}")'
        for service, used in sorted(app_cpu.items()):
            expression = (
                f'pod.metadata.labels["app.kubernetes.io/name"] == "{service}"'
                f' ? Quantity("{used}") : {expression}'
            )
        usages.append(
            {
                "containers": ["app"],
                "usage": {"cpu": {"expression": expression}, "memory": {"value": memory}},
            }
        )
    usages.append({"usage": {"cpu": {"value": cpu}, "memory": {"value": memory}}})
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterResourceUsage",
        "metadata": {"name": name},
        "spec": {"usages": usages},
    }


def api_client(kubeconfig: Path) -> httpx.Client:
    """An HTTP client for the API server of a kubeconfig that this module wrote (its
    current context: the server, and the CA and client certificate as files)."""
    config = yaml.safe_load(kubeconfig.read_text())
    context = next(
        c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
    )
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    tls = ssl.create_default_context(cafile=cluster["certificate-authority"])
    tls.load_cert_chain(user["client-certificate"], user["client-key"])
    return httpx.Client(base_url=cluster["server"], verify=tls, timeout=10)

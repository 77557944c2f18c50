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

Every listener is on 127.0.0.1, ports 20000-20999, except the Dapr injector's health
server, which binds all interfaces whatever it is told (dapr 1.18.2 gives it no listen
address). The made-up pod and Service addresses are never dialled: webhooks and the
metrics API are reached through ExternalName Services that name localhost.
https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/
"""

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from orderflow_devtools.stack import LOOPBACK, Probe, Process, Stack, StackError
from orderflow_devtools.tools import (
    DAPR_VERSION,
    KWOK_VERSION,
    ClusterTools,
    go_module_dir,
)

CONTEXT = "orderflow-local"
NODE = "orderflow-node"
DAPR_NAMESPACE = "dapr-system"
# kube-prometheus-stack 79.x ships an older operator; the monitoring.coreos.com/v1 kinds we
# use are unchanged since. 0.94.1 is the newest release the Go module proxy serves.
PROMETHEUS_OPERATOR_VERSION = "0.94.1"

PORTS = {
    "etcd client": 20379,
    "etcd peer": 20380,
    "kube-apiserver": 20443,
    "metrics-server": 20444,
    "kwok (the node's kubelet API)": 20250,
    "kube-controller-manager": 20257,
    "kube-scheduler": 20259,
    "dapr-injector webhook": 20440,
    "dapr-injector health (all interfaces)": 20441,
    "dapr-sentry": 20501,
    "dapr-sentry health": 20502,
}
API_SERVER = f"https://{LOOPBACK}:{PORTS['kube-apiserver']}"
# kube-controller-manager acts as one service account per controller, so the Dapr injector
# can tell the ReplicaSet controller's requests (which it mutates) from anyone else's.
REPLICASET_CONTROLLER = "replicaset-controller"
# The HPA controller looks at its HPAs every 15s by default; every 5s here, so the tests'
# scaling sequences take seconds, not minutes (docs/kubernetes.md).
HPA_SYNC_PERIOD = "5s"


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
        self._signed(
            "serving",
            "ca",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
            "extendedKeyUsage=serverAuth",
        )
        self._signed("admin", "ca", "/O=system:masters/CN=orderflow-admin", "extendedKeyUsage=clientAuth")
        self._signed(
            "front-proxy-client", "front-proxy-ca", "/CN=front-proxy-client",
            "extendedKeyUsage=clientAuth",
        )
        _openssl("genrsa", "-out", str(self.path("sa.key")), "2048")
        _openssl("rsa", "-in", str(self.path("sa.key")), "-pubout", "-out", str(self.path("sa.pub")))

    def _ca(self, name: str, common_name: str) -> None:
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-subj", f"/CN={common_name}",
            "-keyout", str(self.path(f"{name}.key")), "-out", str(self.path(f"{name}.crt")),
        )

    def _signed(self, name: str, ca: str, subject: str, extensions: str) -> None:
        key, csr = self.path(f"{name}.key"), self.path(f"{name}.csr")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key), "-out", str(csr))
        extfile = self.path(f"{name}.ext")
        extfile.write_text(extensions + "\n")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.path(f"{ca}.crt")),
            "-CAkey", str(self.path(f"{ca}.key")), "-CAcreateserial", "-days", "30",
            "-extfile", str(extfile), "-out", str(self.path(f"{name}.crt")),
        )


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {result.stderr.strip().splitlines()[-1]}")


class LocalCluster:
    """The control plane of one run directory: ``start`` provisions nothing (pass the
    built tools), makes the certificates, starts every process in order and waits for
    each; ``stop`` ends them all and keeps the logs."""

    def __init__(self, tools: ClusterTools, run_dir: Path, out: IO[str]) -> None:
        self.tools = tools
        self.run_dir = run_dir
        self.pki = Pki(run_dir / "pki")
        self.kubeconfig = run_dir / "kubeconfig"
        self.out = out
        self.stack = Stack(self._processes(), out)

    # --- talking to it --------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run the cluster's kubectl against it; a failure is a ClusterError with
        kubectl's own last line, unless ``check`` is false."""
        result = subprocess.run(
            [str(self.tools.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise ClusterError(f"kubectl {' '.join(args[:2])}: {lines[-1] if lines else 'failed'}")
        return result.stdout

    def get(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, objects: list[dict[str, Any]]) -> None:
        """Server-side apply, as the cluster's own field manager."""
        self.kubectl(
            "apply", "--server-side", "--field-manager=orderflow-cluster", "-f", "-",
            stdin=yaml.safe_dump_all(objects),
        )

    def http(self) -> httpx.Client:
        """An HTTP client for the API server, as the admin."""
        return httpx.Client(
            base_url=API_SERVER,
            cert=(str(self.pki.path("admin.crt")), str(self.pki.path("admin.key"))),
            verify=str(self.pki.path("ca.crt")),
            timeout=10,
        )

    # --- lifecycle --------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        self.stack.check_ports(self.stack.processes)
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
        etcd = f"http://{LOOPBACK}:{PORTS['etcd client']}"
        peer = f"http://{LOOPBACK}:{PORTS['etcd peer']}"
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
                ports=_ports("etcd client", "etcd peer"),
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
                    kubeconfig,
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    f"--bind-address={LOOPBACK}",
                    f"--secure-port={PORTS['kube-controller-manager']}",
                    *serving,
                    "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={pki.path('sa.key')}",
                    f"--root-ca-file={pki.path('ca.crt')}",
                    f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD}",
                    "--profiling=false",
                ],
                cwd=run,
                ready=self._service_account_exists("kube-system", REPLICASET_CONTROLLER),
                ports=_ports("kube-controller-manager"),
            ),
            Process(
                name="kube-scheduler",
                argv=[
                    str(tools.kube_scheduler),
                    kubeconfig,
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    f"--bind-address={LOOPBACK}",
                    f"--secure-port={PORTS['kube-scheduler']}",
                    *serving,
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
                    f"--node-ip={LOOPBACK}",
                    f"--node-port={PORTS['kwok (the node\'s kubelet API)']}",
                    f"--server-address={LOOPBACK}:{PORTS['kwok (the node\'s kubelet API)']}",
                    *serving,
                    # Pod addresses are made up and never dialled (module docstring).
                    "--cidr=10.244.0.0/16",
                    # Read the simulated usage and the metrics endpoint from the API, so a
                    # test can change a pod's CPU while the cluster runs.
                    "--enable-crds=Metric,ClusterResourceUsage,ResourceUsage",
                ],
                cwd=run,
                ready=self._node_ready,
                ports=_ports("kwok (the node's kubelet API)"),
            ),
            Process(
                name="metrics-server",
                argv=[
                    str(tools.metrics_server),
                    kubeconfig,
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    f"--bind-address={LOOPBACK}",
                    f"--secure-port={PORTS['metrics-server']}",
                    *serving,
                    "--kubelet-preferred-address-types=InternalIP",
                    "--kubelet-use-node-status-port",
                    f"--kubelet-certificate-authority={pki.path('ca.crt')}",
                    f"--kubelet-client-certificate={pki.path('admin.crt')}",
                    f"--kubelet-client-key={pki.path('admin.key')}",
                    # The fastest it allows: the HPA sees a change within ~10s.
                    "--metric-resolution=10s",
                ],
                cwd=run,
                ready=self._healthz(PORTS["metrics-server"], "/readyz"),
                ports=_ports("metrics-server"),
            ),
            Process(
                name="dapr-sentry",
                argv=[
                    str(tools.sentry),
                    "--mode=kubernetes",
                    kubeconfig,
                    f"--issuer-credentials={run / 'sentry'}",
                    "--trust-domain=cluster.local",
                    f"--listen-address={LOOPBACK}",
                    f"--port={PORTS['dapr-sentry']}",
                    f"--healthz-listen-address={LOOPBACK}",
                    f"--healthz-port={PORTS['dapr-sentry health']}",
                    "--enable-metrics=false",
                ],
                cwd=run,
                ready=_http_ok(f"http://{LOOPBACK}:{PORTS['dapr-sentry health']}/healthz"),
                ports=_ports("dapr-sentry", "dapr-sentry health"),
                env={
                    "NAMESPACE": DAPR_NAMESPACE,
                    # Sentry refuses to run as root unless told that this is on purpose.
                    "DAPR_UNSAFE_SKIP_CONTAINER_UID_GID_CHECK": "true",
                },
            ),
            Process(
                name="dapr-injector",
                argv=[
                    str(tools.injector),
                    kubeconfig,
                    f"--listen-address={LOOPBACK}",
                    f"--port={PORTS['dapr-injector webhook']}",
                    f"--healthz-port={PORTS['dapr-injector health (all interfaces)']}",
                    "--enable-metrics=false",
                ],
                cwd=run,
                ready=_http_ok(
                    f"http://{LOOPBACK}:{PORTS['dapr-injector health (all interfaces)']}/healthz"
                ),
                ports=_ports("dapr-injector webhook", "dapr-injector health (all interfaces)"),
                env={
                    "NAMESPACE": DAPR_NAMESPACE,
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
                            "name": CONTEXT,
                            "cluster": {
                                "server": API_SERVER,
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
                        {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "orderflow-admin"}}
                    ],
                    "current-context": CONTEXT,
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
                    f"https://{LOOPBACK}:{port}{path}",
                    verify=str(self.pki.path("ca.crt")),
                    timeout=2,
                )
            except httpx.TransportError:
                return False
            return response.status_code == httpx.codes.OK

        return probe

    def _service_account_exists(self, namespace: str, name: str) -> Probe:
        def probe() -> bool:
            with self.http() as http:
                path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
                return http.get(path).status_code == httpx.codes.OK

        return probe

    def _node_ready(self) -> bool:
        with self.http() as http:
            response = http.get(f"/api/v1/nodes/{NODE}")
        if response.status_code != httpx.codes.OK:
            return False
        conditions = response.json().get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _metrics_api_available(self) -> bool:
        with self.http() as http:
            response = http.get("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io")
        conditions = response.json().get("status", {}).get("conditions", [])
        return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

    # --- what the cluster holds before anyone deploys ---------------------------------

    def _bootstrap(self) -> None:
        """CRDs (Dapr's, the Prometheus operator's kinds we use, kwok's), the node, and
        the registrations of the local processes: the Dapr webhook and the metrics API."""
        for path in crd_files():
            self.kubectl("apply", "--server-side", "--field-manager=orderflow-cluster", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.apply(bootstrap_objects(self.pki.path("ca.crt").read_text()))

    def _metrics(self) -> None:
        """What kwok reports: the kubelet's resource metrics endpoint (which
        metrics-server scrapes), and a baseline usage of every container."""
        self.apply(simulated_metrics())

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
            "create", "token", "dapr-injector", "-n", DAPR_NAMESPACE,
            "--audience=dapr.io/sentry", "--duration=24h",
        )
        (self.run_dir / "injector.token").write_text(token.strip())


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
    operator = go_module_dir(
        "github.com/prometheus-operator/prometheus-operator", PROMETHEUS_OPERATOR_VERSION
    ) / "example/prometheus-operator-crd"
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
    """The node kwok simulates, and the Services and registrations through which the API
    server reaches the local processes."""
    kubelet_port = PORTS["kwok (the node's kubelet API)"]
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {"kubernetes.io/hostname": NODE, "type": "kwok"},
                "annotations": {
                    # kwok serves each node's resource metrics under its own path.
                    # https://github.com/kubernetes-sigs/metrics-server (node annotation)
                    "metrics.k8s.io/resource-metrics-path": (
                        f"/metrics/nodes/{NODE}/metrics/resource"
                    ),
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": LOOPBACK}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            },
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DAPR_NAMESPACE}},
        *(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": DAPR_NAMESPACE},
            }
            for name in ("dapr-injector", "dapr-sentry")
        ),
        # Sentry keeps its root and issuer here and publishes the trust anchors; it
        # fills them, but will not create them.
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "dapr-trust-bundle", "namespace": DAPR_NAMESPACE},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dapr-trust-bundle", "namespace": DAPR_NAMESPACE},
        },
        _external_name("dapr-sidecar-injector", DAPR_NAMESPACE, PORTS["dapr-injector webhook"]),
        # As Dapr's chart registers it (charts/dapr/charts/dapr_sidecar_injector), except
        # that the Service is the one above and a failure refuses the pod: a test must not
        # pass on a pod that was let through without its sidecar. The injector fills in
        # caBundle itself, with sentry's trust anchors.
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "dapr-sidecar-injector"},
            "webhooks": [
                {
                    "name": "sidecar-injector.dapr.io",
                    "reinvocationPolicy": "IfNeeded",
                    "clientConfig": {
                        "service": {
                            "namespace": DAPR_NAMESPACE,
                            "name": "dapr-sidecar-injector",
                            "path": "/mutate",
                            "port": PORTS["dapr-injector webhook"],
                        }
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["pods"],
                            "operations": ["CREATE"],
                        }
                    ],
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    # Only the namespaces that run apps: the control plane's own stay out.
                    "namespaceSelector": {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "NotIn",
                                "values": ["kube-system", DAPR_NAMESPACE],
                            }
                        ]
                    },
                }
            ],
        },
        _external_name("metrics-server", "kube-system", PORTS["metrics-server"]),
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "service": {
                    "name": "metrics-server",
                    "namespace": "kube-system",
                    "port": PORTS["metrics-server"],
                },
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "caBundle": _base64(ca_pem),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


def _external_name(name: str, namespace: str, port: int) -> dict[str, Any]:
    """A Service that sends the API server to a process on this machine.
    https://kubernetes.io/docs/concepts/services-networking/service/#externalname"""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "https", "port": port}],
        },
    }


def _base64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def simulated_metrics() -> list[dict[str, Any]]:
    """kwok's kubelet resource metrics (the endpoint kwok's own metrics-server setup
    uses, sigs.k8s.io/kwok kustomize/metrics/resource) and the usage it reports for every
    container until a test says otherwise: 1m of CPU and 16Mi of memory."""
    container = {
        "labels": [
            {"name": "container", "value": "container.name"},
            {"name": "namespace", "value": "pod.metadata.namespace"},
            {"name": "pod", "value": "pod.metadata.name"},
        ],
        "dimension": "container",
    }
    pod = {
        "labels": [
            {"name": "namespace", "value": "pod.metadata.namespace"},
            {"name": "pod", "value": "pod.metadata.name"},
        ],
        "dimension": "pod",
    }
    metrics = [
        {"name": "scrape_error", "dimension": "node", "kind": "gauge", "value": "0"},
        {"name": "container_start_time_seconds", "kind": "gauge", "value": "pod.SinceSecond()", **container},
        {
            "name": "container_cpu_usage_seconds_total",
            "kind": "counter",
            "value": 'pod.CumulativeUsage("cpu", container.name)',
            **container,
        },
        {
            "name": "container_memory_working_set_bytes",
            "kind": "gauge",
            "value": 'pod.Usage("memory", container.name)',
            **container,
        },
        {"name": "pod_cpu_usage_seconds_total", "kind": "counter", "value": 'pod.CumulativeUsage("cpu")', **pod},
        {"name": "pod_memory_working_set_bytes", "kind": "gauge", "value": 'pod.Usage("memory")', **pod},
        {"name": "node_cpu_usage_seconds_total", "dimension": "node", "kind": "counter", "value": 'node.CumulativeUsage("cpu")'},
        {"name": "node_memory_working_set_bytes", "dimension": "node", "kind": "gauge", "value": 'node.Usage("memory")'},
    ]
    return [
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Metric",
            "metadata": {"name": "metrics-resource"},
            "spec": {"path": "/metrics/nodes/{nodeName}/metrics/resource", "metrics": metrics},
        },
        usage("baseline", {}, cpu="1m", memory="16Mi"),
    ]


def usage(
    name: str, selector: dict[str, Any], *, cpu: str, memory: str, containers: list[str] | None = None
) -> dict[str, Any]:
    """A kwok ClusterResourceUsage: what the selected pods' containers (all, or
    ``containers``) report using. https://kwok.sigs.k8s.io/docs/user/resource-usage-configuration/"""
    entry: dict[str, Any] = {"usage": {"cpu": {"value": cpu}, "memory": {"value": memory}}}
    if containers:
        entry["containers"] = containers
    spec: dict[str, Any] = {"usages": [entry]}
    if selector:
        spec["selector"] = selector
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterResourceUsage",
        "metadata": {"name": name},
        "spec": spec,
    }

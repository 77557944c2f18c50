"""A one-node Kubernetes cluster with real containers, without Docker, for `make cluster`
on Linux as root (kind with Docker is the way everywhere else; docs/kubernetes.md).

The control plane is :class:`orderflow_devtools.cluster.LocalCluster`'s own etcd, API
server, controller-manager and scheduler; the node is a real kubelet with Debian's
containerd 1.6 and runc, the CNI bridge plugin, kube-proxy, and a local image registry.

Everything runs inside a network namespace made here (``ip netns add``), entered with
``nsenter --net`` (``ip netns exec`` would remount /sys and hide the cgroup mounts). The
namespace holds a veth pair whose one end carries the node IP (kubelet refuses a loopback
one); it has no default route and no masquerade: its routes are its own /30, the pod range
(the bridge) and the Service range (kube-proxy's NAT rules). The API server is reached
from the machine's loopback through socat and a Unix socket, as sentry is in the local
stack. The bridge plugin does not enforce NetworkPolicies: they are stored, not applied.

Stopping ends every process (the containers' shims too), unmounts what the node mounted
under the run directory, removes the pods' network namespaces, the cgroups, the namespace,
and puts back the kernel settings kubelet changes (vm.overcommit_memory, kernel.panic,
kernel.panic_on_oops: machine-wide, it sets them at start).
https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/
https://man7.org/linux/man-pages/man8/ip-netns.8.html
"""

import ctypes
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import psutil
import yaml

from orderflow_devtools.cluster import (
    NODE,
    PORTS,
    ClusterError,
    LocalCluster,
    _http_ok,
)
from orderflow_devtools.stack import LOOPBACK, Process
from orderflow_devtools.tools import (
    PAUSE_VERSION,
    ClusterTools,
    NodeTools,
    cache_root,
    files_layer,
    write_oci_archive,
)

CONTEXT = "orderflow-node"
NETNS = "orderflow-node"
# The node's veth pair, both ends inside the namespace (the node IP on eth0, the peer
# unaddressed): nothing of it is in the machine's own network.
NODE_IP = "10.213.0.2"
POD_CIDR = "10.244.0.0/24"
POD_RANGE = "10.244.0.0/16"
SERVICE_RANGE = "10.96.0.0/16"
# Inside the namespace any port is ours; the only one on the machine's loopback is the
# API server's (through socat): not the one of `make cluster-local`, so both can run.
API_PORT = 20643
REGISTRY = f"{NODE_IP}:5000"
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_HEALTHZ_PORT = 10256
PAUSE_IMAGE = f"{REGISTRY}/pause:{PAUSE_VERSION}"
# kubelet sets these machine-wide at start (pkg/kubelet/cm, setupKernelTunables): they are
# read before and written back after.
KERNEL_TUNABLES = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
)
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
CGROUP_ROOT = "orderflow-node"

_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        raise ClusterError(f"setns: {os.strerror(ctypes.get_errno())}")


@contextmanager
def inside(netns: str = NETNS) -> Iterator[None]:
    """Run this thread's sockets in ``netns`` (setns(2) moves only the calling thread)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def _in_netns(probe: Callable[[], _T]) -> Callable[[], _T]:
    def wrapped() -> _T:
        with inside():
            return probe()

    return wrapped


def _which(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ClusterError(f"{name} is not on PATH (Debian: iproute2, util-linux)")
    return found


def _ip(*args: str) -> None:
    result = subprocess.run([_which("ip"), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def netns_names() -> set[str]:
    """The network namespaces `ip netns` names (the pods' are cni-...)."""
    directory = Path("/run/netns")
    return {entry.name for entry in directory.iterdir()} if directory.is_dir() else set()


def create_network() -> None:
    """The namespace, its loopback, the veth pair with the node IP, and the one extra
    route: the Service range, towards the node's own end (kube-proxy rewrites it first)."""
    if NETNS in netns_names():
        raise ClusterError(
            f"the network namespace {NETNS} exists: another `make cluster` runs, or one was"
            f" killed (`make cluster-down`, or `ip netns delete {NETNS}`)"
        )
    _ip("netns", "add", NETNS)
    for command in (
        ("link", "set", "lo", "up"),
        ("link", "add", "eth0", "type", "veth", "peer", "name", "peer0"),
        ("addr", "add", f"{NODE_IP}/30", "dev", "eth0"),
        ("link", "set", "eth0", "up"),
        ("link", "set", "peer0", "up"),
        ("route", "add", SERVICE_RANGE, "dev", "eth0"),
    ):
        _ip("-n", NETNS, *command)
    # Pods reach Services through the bridge; inside the namespace only (its own sysctl).
    _ip("netns", "exec", NETNS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


def routes() -> list[dict[str, str]]:
    """The namespace's IPv4 routes, as `ip -j route` gives them."""
    result = subprocess.run(
        [_which("ip"), "-n", NETNS, "-j", "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[dict[str, str]] = json.loads(result.stdout)
    return found


def _nsenter(argv: list[str]) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{NETNS}", "--", *argv]


class NodeCluster(LocalCluster):
    """:class:`LocalCluster`'s control plane and a real node, in the namespace NETNS."""

    context = CONTEXT
    api_server = f"https://{LOOPBACK}:{API_PORT}"

    def __init__(
        self, tools: ClusterTools, node_tools: NodeTools, run_dir: Path, out: IO[str]
    ) -> None:
        self.node_tools = node_tools
        self.containerd_socket = run_dir / "containerd" / "containerd.sock"
        self._tunables: dict[str, str] = {}
        self._netns_before: set[str] = set()
        self._made_network = False
        super().__init__(tools, run_dir, out)

    # --- lifecycle --------------------------------------------------------------------

    def start(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        self._tunables = {name: _sysctl(name) for name in KERNEL_TUNABLES}
        self._netns_before = netns_names()
        create_network()
        self._made_network = True
        self.pki.create()
        self.pki.sign(
            "node",
            "ca",
            f"/CN=system:node:{NODE}",
            f"subjectAltName=IP:{NODE_IP},DNS:{NODE}\nextendedKeyUsage=serverAuth",
        )
        self._write_kubeconfig()
        self._write_node_files()

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        self.stack.check_ports(["api-bridge"])
        self.stack.start(["registry", "etcd", "kube-apiserver"], timeout=remaining())
        self.stack.start(["api-socket", "api-bridge"], timeout=remaining())
        self.stack.start(["kube-controller-manager", "kube-scheduler"], timeout=remaining())
        self.stack.start(["containerd"], timeout=remaining())
        self._push(f"oci-archive:{self.node_tools.pause_image}", PAUSE_IMAGE)
        _make_cgroups()
        self.stack.start(["kubelet", "kube-proxy"], timeout=remaining())
        self._wait_for(f"the node {NODE} Ready", self._node_ready, deadline)

    def stop(self) -> None:
        self.stack.stop(grace=10.0)
        if not self._made_network:
            return
        self._end_shims()
        self._unmount()
        for name in netns_names() - self._netns_before - {NETNS}:
            if name.startswith("cni-"):
                _ip("netns", "delete", name)
        _remove_cgroups()
        if NETNS in netns_names():
            _ip("netns", "delete", NETNS)
        for name, value in self._tunables.items():
            if _sysctl(name) != value:
                Path("/proc/sys", name).write_text(value + "\n")

    def push(self, source: str, image: str) -> None:
        """Copy an image (a skopeo transport reference) into the node's registry."""
        self._push(source, image)

    def _push(self, source: str, image: str) -> None:
        skopeo = str(self.node_tools.binaries["skopeo"])
        result = subprocess.run(
            _nsenter(
                [skopeo, "copy", "--quiet", "--dest-tls-verify=false", source, f"docker://{image}"]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"skopeo copy {source}: {result.stderr.strip()}")

    def _end_shims(self) -> None:
        """containerd's shims leave its process group on purpose (they outlive a restart
        of containerd): end ours, named by our socket, with the containers under them."""
        address = str(self.containerd_socket)
        shims = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "containerd-shim-runc-v2" and address in (p.info["cmdline"] or [])
        ]
        for shim in shims:
            for process in [*shim.children(recursive=True), shim]:
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    continue
        psutil.wait_procs(shims, timeout=10)

    def _unmount(self) -> None:
        """What kubelet and containerd mounted under the run directory (volumes, root
        filesystems, shm) and the pods' network namespace files, deepest first."""
        run = str(self.run_dir.resolve())
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for point in sorted(
            (m for m in mounts if m.startswith(run + "/") or m.startswith("/run/netns/cni-")),
            key=len,
            reverse=True,
        ):
            subprocess.run([_which("umount"), "--lazy", point], capture_output=True, check=False)

    # --- the processes ----------------------------------------------------------------

    def _processes(self) -> list[Process]:
        node, run = self.node_tools, self.run_dir
        shim = node.binaries["containerd-shim-runc-v2"]
        moved = {f"--secure-port={PORTS['kube-apiserver']}": f"--secure-port={API_PORT}"}
        control_plane = [
            Process(
                name=p.name,
                argv=_nsenter([moved.get(arg, arg) for arg in p.argv]),
                cwd=p.cwd,
                ready=_in_netns(p.ready),
                # A new namespace: its ports are free (Stack checks them on loopback here).
                ports={},
                env=p.env,
            )
            for p in super()._processes()
            if p.name in CONTROL_PLANE
        ]
        socket = run / "api.sock"
        socat = str(node.binaries["socat"])
        api = API_PORT
        kubeconfig = f"--kubeconfig={self.kubeconfig}"
        return [
            *control_plane,
            Process(
                name="registry",
                argv=_nsenter(
                    [str(node.binaries["docker-registry"]), "serve", str(run / "registry.yaml")]
                ),
                cwd=run,
                ready=_in_netns(_http_ok(f"http://{REGISTRY}/v2/")),
                ports={},
            ),
            # The API server's port on the machine's loopback: socat in the namespace
            # serves a Unix socket, socat outside listens and dials it.
            Process(
                name="api-socket",
                argv=_nsenter(
                    [
                        socat,
                        f"UNIX-LISTEN:{socket},fork,mode=600,unlink-early",
                        f"TCP:{LOOPBACK}:{api}",
                    ]
                ),
                cwd=run,
                ready=socket.exists,
                ports={},
            ),
            Process(
                name="api-bridge",
                argv=[
                    socat,
                    f"TCP-LISTEN:{api},bind={LOOPBACK},reuseaddr,fork",
                    f"UNIX-CONNECT:{socket}",
                ],
                cwd=run,
                ready=self._api_ready,
                ports={"kube-apiserver (from the node's namespace)": api},
            ),
            Process(
                name="containerd",
                argv=_nsenter(
                    [str(node.binaries["containerd"]), f"--config={run / 'containerd.toml'}"]
                ),
                cwd=run,
                ready=self.containerd_socket.exists,
                ports={},
                # Its shims are found by name next to it.
                env={"PATH": f"{shim.parent}:{os.environ['PATH']}"},
            ),
            Process(
                name="kubelet",
                argv=_nsenter(
                    [
                        str(node.kubelet),
                        f"--config={run / 'kubelet.yaml'}",
                        kubeconfig,
                        f"--root-dir={run / 'kubelet'}",
                        f"--cert-dir={run / 'kubelet-pki'}",
                        f"--node-ip={NODE_IP}",
                        f"--hostname-override={NODE}",
                    ]
                ),
                cwd=run,
                ready=_in_netns(_http_ok(f"http://{LOOPBACK}:{KUBELET_HEALTHZ_PORT}/healthz")),
                ports={},
            ),
            Process(
                name="kube-proxy",
                argv=_nsenter([str(node.kube_proxy), f"--config={run / 'kube-proxy.yaml'}"]),
                cwd=run,
                ready=_in_netns(_http_ok(f"http://{LOOPBACK}:{KUBE_PROXY_HEALTHZ_PORT}/livez")),
                ports={},
            ),
        ]

    def _write_node_files(self) -> None:
        run, pki, node = self.run_dir, self.pki, self.node_tools
        (run / "registry").mkdir(parents=True, exist_ok=True)
        (run / "registry.yaml").write_text(
            yaml.safe_dump(
                {
                    "version": 0.1,
                    "log": {"level": "warn"},
                    "storage": {"filesystem": {"rootdirectory": str(run / "registry")}},
                    "http": {"addr": REGISTRY},
                }
            )
        )
        # containerd pulls from the registry over plain HTTP: it is in the namespace.
        # https://github.com/containerd/containerd/blob/release/1.6/docs/hosts.md
        hosts = run / "certs.d" / REGISTRY
        hosts.mkdir(parents=True, exist_ok=True)
        (hosts / "hosts.toml").write_text(
            f'server = "http://{REGISTRY}"\n\n[host."http://{REGISTRY}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )
        cni = run / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        # Pods get routes to the pod and Service ranges only, no default route; no masquerade.
        # https://www.cni.dev/plugins/current/main/bridge/
        (cni / "10-orderflow.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "orderflow",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "cni0",
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": POD_RANGE}, {"dst": SERVICE_RANGE}],
                                "dataDir": str(run / "cni-ipam"),
                            },
                        }
                    ],
                }
            )
        )
        # restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE, and runc fails every
        # sandbox that asks for a lower score ("can't get final child's PID from pipe").
        # runc with cgroupfs: crun fails on these hybrid cgroup v1 hierarchies.
        # https://github.com/containerd/containerd/blob/release/1.6/docs/cri/config.md
        (run / "containerd.toml").write_text(
            f"""version = 2
root = "{run / "containerd" / "root"}"
state = "{run / "containerd" / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "{LOOPBACK}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{node.binaries["runc"]}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{node.cni_dir}"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{run / "certs.d"}"
"""
        )
        # What the pods resolve with until cluster DNS runs: nothing outside.
        (run / "pod-resolv.conf").write_text(f"nameserver {LOOPBACK}\n")
        (run / "kubelet.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "address": NODE_IP,
                    "port": KUBELET_PORT,
                    "readOnlyPort": 0,
                    "healthzBindAddress": LOOPBACK,
                    "healthzPort": KUBELET_HEALTHZ_PORT,
                    "tlsCertFile": str(pki.path("node.crt")),
                    "tlsPrivateKeyFile": str(pki.path("node.key")),
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(pki.path("ca.crt"))},
                    },
                    "authorization": {"mode": "Webhook"},
                    "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{CGROUP_ROOT}",
                    "failSwapOn": False,
                    "podCIDR": POD_CIDR,
                    "resolvConf": str(run / "pod-resolv.conf"),
                    # Eviction for memory only: a busy build disk must not evict the pods.
                    "evictionHard": {"memory.available": "100Mi"},
                    "imageGCHighThresholdPercent": 100,
                    "serializeImagePulls": False,
                    "nodeStatusReportFrequency": "10s",
                }
            )
        )
        (run / "kube-proxy.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "mode": "iptables",
                    "clientConnection": {"kubeconfig": str(self.kubeconfig)},
                    "hostnameOverride": NODE,
                    "clusterCIDR": POD_RANGE,
                    "bindAddress": NODE_IP,
                    "healthzBindAddress": f"{LOOPBACK}:{KUBE_PROXY_HEALTHZ_PORT}",
                    "metricsBindAddress": f"{LOOPBACK}:10249",
                    # Leave the machine-wide conntrack table size and timeouts alone.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                }
            )
        )


def _sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().strip()


def _make_cgroups() -> None:
    """kubelet wants its cgroupRoot to exist in every hierarchy; a new cpuset starts with
    no CPUs or memory nodes, so it gets its parent's."""
    for hierarchy in _hierarchies():
        top = hierarchy / CGROUP_ROOT
        top.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / name).exists() and not (top / name).read_text().strip():
                (top / name).write_text((hierarchy / name).read_text())


def _hierarchies() -> list[Path]:
    """The cgroup hierarchies mounted under /sys/fs/cgroup (v1 and v2 alike)."""
    return [
        Path(line.split()[4])
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split(" - ", 1)[1].startswith(("cgroup ", "cgroup2 "))
        and line.split()[4].startswith("/sys/fs/cgroup/")
    ]


def _remove_cgroups() -> None:
    """The cgroups kubelet made under CGROUP_ROOT in each hierarchy, deepest first."""
    for hierarchy in _hierarchies():
        top = hierarchy / CGROUP_ROOT
        if not top.is_dir():
            continue
        for directory in sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            directory.rmdir()
        top.rmdir()


# --- images without Docker ----------------------------------------------------------------
# buildah builds services/Dockerfile as it is; its two base images are made here: Python
# from Debian's packages (mmdebstrap: bookworm has Python 3.11), and uv from the binaries of
# its PyPI wheel (the uv that runs this, the version the Dockerfile names). buildah keeps
# its storage in the tool cache, so a warm build reuses every unchanged layer.
# https://manpages.debian.org/bookworm/mmdebstrap/mmdebstrap.1.en.html
PYTHON_BASE = "localhost/orderflow/python:3.11-bookworm"
# The machine's CA bundle, mounted over the image's during the build: build steps that
# reach PyPI verify it with what this machine trusts.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class Images:
    """buildah and skopeo over the cached image store, pushing into the node's registry."""

    def __init__(self, repo: Path, node_tools: NodeTools, log: Callable[[str], None]) -> None:
        self.repo = repo
        self.tools = node_tools
        self.log = log
        store = cache_root() / "node-images"
        self.storage = ["--root", str(store / "storage"), "--runroot", str(store / "run")]
        self.transport = f"containers-storage:[overlay@{store / 'storage'}+{store / 'run'}]"
        self.cache = store

    def build(self, service: str, target: str = "runtime") -> str:
        """The service's image (tag ``orderflow/<service>:<target>``), built from its
        Dockerfile on the local bases; returns its name in buildah's store."""
        uv_image = self._ensure_uv()
        self._ensure_python()
        name = f"localhost/orderflow/{service}:{target}"
        started = time.monotonic()
        self.log(f"building {name} with buildah (services/Dockerfile, target {target})")
        try:
            self._buildah(
                "build",
                "--layers",
                "--pull=never",
                "--runtime",
                str(self.tools.binaries["runc"]),
                "--cgroup-manager",
                "cgroupfs",
                # The steps that install from PyPI run in the machine's network, as a docker
                # build does; with buildah's default they would get a network of its own
                # (and NAT rules in the machine's iptables).
                "--network",
                "host",
                f"--volume={HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro",
                "--build-arg",
                f"SERVICE={service}",
                "--build-arg",
                f"PYTHON_IMAGE={PYTHON_BASE}",
                "--build-arg",
                f"UV_IMAGE={uv_image}",
                "--target",
                target,
                "--file",
                str(self.repo / "services/Dockerfile"),
                "--tag",
                name,
                str(self.repo),
            )
        finally:
            # buildah 1.28 leaves a mounted working container behind for each `COPY
            # --from` of an image (here uv's): the store is ours alone, so all go.
            self._buildah("rm", "--all")
        self.log(f"  {name}: built in {time.monotonic() - started:.0f}s")
        return name

    def push(self, image: str, destination: str) -> None:
        """``image`` from the store into the node's registry, from inside its namespace."""
        self._buildah(
            "push", "--quiet", "--tls-verify=false", image, f"docker://{destination}", netns=True
        )

    def _ensure_python(self) -> None:
        if self._exists(PYTHON_BASE):
            return
        rootfs = self.cache / "python-3.11-bookworm.tar"
        if not rootfs.exists():
            self.log("making the Python base image with mmdebstrap (Debian bookworm): minutes")
            partial = rootfs.with_suffix(".partial")
            _checked(
                [
                    str(self.tools.binaries["mmdebstrap"]),
                    "--variant=minbase",
                    "--include=python3,ca-certificates",
                    "--format=tar",
                    "bookworm",
                    str(partial),
                ]
            )
            partial.replace(rootfs)
        archive = self.cache / "python-base.oci.tar"
        write_oci_archive(
            archive,
            rootfs.read_bytes(),
            ref="3.11-bookworm",
            env=[
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                # uv verifies TLS with this bundle (its own roots otherwise).
                f"SSL_CERT_FILE={HOST_CA_BUNDLE}",
            ],
        )
        self._copy(f"oci-archive:{archive}", PYTHON_BASE)
        archive.unlink()

    def _ensure_uv(self) -> str:
        dockerfile = (self.repo / "services/Dockerfile").read_text()
        match = re.search(r"^ARG UV_IMAGE=\S+:(\S+)$", dockerfile, re.MULTILINE)
        if match is None:
            raise ClusterError("services/Dockerfile names no UV_IMAGE version")
        version = match.group(1)
        image = f"localhost/orderflow/uv:{version}"
        if self._exists(image):
            return image
        uv = shutil.which("uv")
        reported = (
            subprocess.run([uv, "--version"], capture_output=True, text=True, check=False).stdout
            if uv
            else ""
        )
        if uv is None or reported.split()[1:2] != [version]:
            raise ClusterError(f"uv {version} (services/Dockerfile) is not the uv on PATH")
        binaries = {name: (Path(uv).parent / name).read_bytes() for name in ("uv", "uvx")}
        archive = self.cache / "uv.oci.tar"
        write_oci_archive(archive, files_layer(binaries), ref=version)
        self._copy(f"oci-archive:{archive}", image)
        archive.unlink()
        return image

    def _exists(self, image: str) -> bool:
        result = subprocess.run(
            [str(self.tools.binaries["buildah"]), *self.storage, "inspect", "--type=image", image],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _copy(self, source: str, image: str) -> None:
        _checked(
            [
                str(self.tools.binaries["skopeo"]),
                "copy",
                "--quiet",
                source,
                f"{self.transport}{image}",
            ]
        )

    def _buildah(self, *args: str, netns: bool = False) -> None:
        command = [str(self.tools.binaries["buildah"]), *self.storage, *args]
        _checked(_nsenter(command) if netns else command)


def _checked(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise ClusterError(
            f"{Path(command[0]).name} {command[1]}: {lines[-1] if lines else 'failed'}"
        )

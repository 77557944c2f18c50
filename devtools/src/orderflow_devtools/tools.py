"""Provision the binaries the local stack and the tests run, pinned and cached outside the
repository, keyed by version, so that a fresh clone reuses what an earlier one built.

For each tool, in order: the cached copy; the same version already installed (PATH, and
``~/.dapr/bin`` where ``dapr init`` puts daprd); the official release download (daprd only,
fails fast without internet); a build from the Go module proxy (daprd, Dapr's sentry,
Jaeger); the Debian package (Redis, Prometheus, promtool, socat) when we are root and have
apt-get. When none works
the error names the tool, says why, and how to install it by hand.
"""

import fcntl
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# The Dapr runtime line is 1.18. 1.18.2 is the newest 1.18.x
# whose dependencies the Go module proxy serves in full (1.18.3 needs modules it does not).
DAPR_VERSION = "1.18.2"
# github.com/jaegertracing/jaeger@v1.76.0 holds cmd/jaeger: the OTLP receiver, in-memory
# storage and the query API in one process. https://www.jaegertracing.io/docs/latest/
JAEGER_MODULE_VERSION = "1.76.0"

Log = Callable[[str], None]


class ToolError(Exception):
    """A tool could not be had; the message is the one-line cause for the user."""


@dataclass(frozen=True)
class Tools:
    daprd: Path
    # Dapr's certificate authority: the sidecars' mTLS identities (stack.sentry_process).
    sentry: Path
    # Carries sentry's gRPC out of the network namespace it runs in, through a Unix socket.
    socat: Path
    jaeger: Path
    redis_server: Path
    prometheus: Path
    promtool: Path


def cache_root() -> Path:
    configured = os.environ.get("ORDERFLOW_TOOLS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "orderflow" / "tools"


def ensure_all(log: Log) -> Tools:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / ".lock"):
        return Tools(
            daprd=ensure_daprd(root, log),
            sentry=ensure_dapr_control_plane(root, log) / "sentry",
            socat=ensure_debian("socat", "socat", log),
            jaeger=ensure_jaeger(root, log),
            redis_server=ensure_debian("redis-server", "redis-server", log),
            prometheus=ensure_debian("prometheus", "prometheus", log),
            promtool=ensure_debian("promtool", "prometheus", log),
        )


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Two provisioning runs at once (make up beside make test) take turns."""
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def daprd_version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def ensure_daprd(root: Path, log: Log) -> Path:
    cached = root / f"daprd-{DAPR_VERSION}" / "daprd"
    if daprd_version(cached) == DAPR_VERSION:
        return cached
    for candidate in (shutil.which("daprd"), Path.home() / ".dapr" / "bin" / "daprd"):
        if candidate and daprd_version(Path(candidate)) == DAPR_VERSION:
            return Path(candidate)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download_daprd(cached)
        log(f"daprd {DAPR_VERSION}: downloaded the official release")
    except (httpx.HTTPError, tarfile.TarError, KeyError) as download_error:
        log(f"daprd {DAPR_VERSION}: release download failed ({download_error}); building it")
        try:
            go_build(
                "github.com/dapr/dapr",
                DAPR_VERSION,
                "github.com/dapr/dapr/cmd/daprd",
                cached,
                # The smallest tag set that compiles the Redis, in-memory and mDNS
                # components; without a tag daprd has no components and panics at start.
                tags="stablecomponents",
                ldflags=f"-X github.com/dapr/dapr/pkg/buildinfo.version={DAPR_VERSION}",
                log=log,
            )
        except ToolError as build_error:
            raise ToolError(
                f"daprd {DAPR_VERSION}: not on PATH or in ~/.dapr/bin, release download failed"
                f" ({download_error}), Go build failed ({build_error}); install it by hand"
                f" with `dapr init --runtime-version {DAPR_VERSION}`"
            ) from build_error
    found = daprd_version(cached)
    if found != DAPR_VERSION:
        raise ToolError(f"daprd at {cached} reports version {found!r}, not {DAPR_VERSION}")
    return cached


def _download_daprd(target: Path) -> None:
    goos = platform.system().lower()
    goarch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    url = (
        f"https://github.com/dapr/dapr/releases/download/v{DAPR_VERSION}/"
        f"daprd_{goos}_{goarch}.tar.gz"
    )
    response = httpx.get(url, follow_redirects=True, timeout=httpx.Timeout(30, connect=5))
    response.raise_for_status()
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        member = archive.extractfile("daprd")
        if member is None:
            raise KeyError("daprd is not a file in the release archive")
        _write_executable(target, member.read())


def _write_executable(target: Path, content: bytes) -> None:
    partial = target.with_suffix(".partial")
    partial.write_bytes(content)
    partial.chmod(0o755)
    partial.replace(target)


def ensure_jaeger(root: Path, log: Log) -> Path:
    cached = root / f"jaeger-{JAEGER_MODULE_VERSION}" / "jaeger"
    if cached.exists():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        go_build(
            "github.com/jaegertracing/jaeger",
            JAEGER_MODULE_VERSION,
            "github.com/jaegertracing/jaeger/cmd/jaeger",
            cached,
            log=log,
        )
    except ToolError as error:
        raise ToolError(
            f"jaeger: Go build of github.com/jaegertracing/jaeger@v{JAEGER_MODULE_VERSION}"
            f" failed ({error}); put a jaeger v2 binary at {cached} by hand"
        ) from error
    return cached


def ensure_debian(binary: str, package: str, log: Log) -> Path:
    found = shutil.which(binary)
    if found:
        return Path(found)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"{binary}: installing the Debian package {package}")
        try:
            _apt_install([package])
        except ToolError as error:
            raise ToolError(f"{binary}: {error}") from error
        found = shutil.which(binary)
        if found:
            return Path(found)
    raise ToolError(
        f"{binary}: not on PATH, and it can be installed here only as root with apt-get;"
        f" install the package {package} by hand (e.g. `sudo apt-get install {package}`)"
    )


def _apt_install(packages: Sequence[str]) -> None:
    """Install Debian packages, non-interactively; a failure is a ToolError with apt-get's
    last line."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise ToolError(f"`{' '.join(command)}` failed: {_last_line(result.stderr)}")


def go_build(
    module: str,
    version: str,
    packages: str | Mapping[str, str],
    output: Path,
    *,
    log: Log,
    tags: str = "",
    ldflags: str = "",
    requires: Sequence[str] = (),
    replaces: Callable[[str], list[str]] | None = None,
) -> None:
    """Build from the Go module proxy: one package of ``module@version`` into the file
    ``output``, or several (``{binary name: package}``) into the directory ``output`` in
    one ``go build``, so that the packages they share compile once.

    ``go install module@version`` refuses modules whose go.mod has ``replace`` directives
    (github.com/dapr/dapr has several), so we build from a throwaway wrapper module that
    requires the module (and ``requires``, "path vX" each), repeats its ``godebug`` lines
    and its ``replace`` lines (or what ``replaces`` makes of its go.mod). ``-mod=mod``
    fetches only the packages the chosen tags compile, where ``go mod tidy`` would fetch
    every component's. https://go.dev/ref/mod#go-install
    """
    go = shutil.which("go")
    if go is None:
        raise ToolError("the Go toolchain is not on PATH (https://go.dev/doc/install)")
    names = {output.name: packages} if isinstance(packages, str) else dict(packages)
    log(
        f"building {', '.join(names)} from {module}@v{version} (Go module proxy): minutes"
        " on a cold cache"
    )
    download = _run([go, "mod", "download", "-json", f"{module}@v{version}"], cwd=None)
    go_mod = Path(json.loads(download)["GoMod"]).read_text()
    go_directive = re.search(r"^go (\S+)$", go_mod, re.MULTILINE)
    godebug = re.findall(r"^godebug .+$", go_mod, re.MULTILINE)
    with tempfile.TemporaryDirectory(prefix="orderflow-build-") as work:
        workdir = Path(work)
        (workdir / "go.mod").write_text(
            "module orderflow.local/build\n\n"
            f"go {go_directive.group(1) if go_directive else '1.26'}\n\n"
            + "".join(f"{line}\n" for line in godebug)
            + "".join(f"require {line}\n" for line in [f"{module} v{version}", *requires])
            + "".join(f"replace {line}\n" for line in (replaces or replace_directives)(go_mod))
        )
        partial = output.with_name(output.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        single = isinstance(packages, str)
        command = [go, "build", "-mod=mod", "-trimpath", "-v"]
        command += ["-o", str(partial) if single else f"{partial}/"]
        if tags:
            command += ["-tags", tags]
        command += ["-ldflags", f"-s -w {ldflags}".strip(), *names.values()]
        _build_with_progress(command, workdir, ", ".join(names), log)
        if not single:
            for name, package in names.items():
                (partial / _go_binary_name(package)).rename(partial / name)
            shutil.rmtree(output, ignore_errors=True)
    partial.replace(output)


def _go_binary_name(package: str) -> str:
    """The file ``go build -o DIR/`` writes: the last path element, or the one before a
    major version suffix (``.../server/v3`` builds ``server``). https://go.dev/ref/mod"""
    parts = package.split("/")
    return parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1]


PROGRESS_EVERY = 60.0


def _build_with_progress(command: list[str], cwd: Path, what: str, log: Log) -> None:
    """Run ``go build -v``, which names each package as it compiles it, and say every
    minute how far it is: a silent ten-minute build looks like a hang."""
    started = last = time.monotonic()
    compiled = 0
    tail: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as build:
        for line in build.stderr or ():
            compiled += 1
            tail = [*tail[-19:], line.rstrip()]
            if time.monotonic() - last >= PROGRESS_EVERY:
                last = time.monotonic()
                log(f"  {what}: {compiled} packages compiled, {(last - started) / 60:.0f} min")
    if build.returncode != 0:
        raise ToolError(f"`{' '.join(command[:3])} ...` failed: {_last_line(chr(10).join(tail))}")
    log(f"  {what}: built in {(time.monotonic() - started) / 60:.1f} min")


def replace_directives(go_mod: str) -> list[str]:
    """The ``old => new`` lines of a go.mod, from both one-line and block ``replace``."""
    directives: list[str] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                directives.append(line)
        elif line == "replace (":
            in_block = True
        elif line.startswith("replace "):
            directives.append(line.removeprefix("replace ").strip())
    return directives


def _run(command: list[str], cwd: Path | None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    if result.returncode != 0:
        raise ToolError(f"`{' '.join(command[:3])} ...` failed: {_last_line(result.stderr)}")
    return result.stdout


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


# kustomize renders deploy/ for the manifest tests and for skaffold. kubectl embeds an older
# kustomize (5.5 in kubectl 1.32), so we pin our own: the Go module proxy serves it.
# https://kubectl.docs.kubernetes.io/installation/kustomize/source/
KUSTOMIZE_VERSION = "5.7.1"


def ensure_kustomize(log: Log) -> Path:
    """The pinned kustomize binary, built from the Go module proxy into the tool cache."""
    module = "sigs.k8s.io/kustomize/kustomize/v5"
    return _ensure_go_tool("kustomize", KUSTOMIZE_VERSION, module, module, log=log)


def _ensure_go_tool(
    name: str, version: str, module: str, package: str, *, log: Log, ldflags: str = ""
) -> Path:
    """A tool that answers ``<tool> version`` with ``v<version>``: the cached build, or a
    build from the Go module proxy, under the cache lock (test sessions may ask at once)."""
    root = cache_root()
    cached = root / f"{name}-{version}" / name
    if reported_version(cached) == f"v{version}":
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / ".lock"):
        if reported_version(cached) == f"v{version}":
            return cached
        try:
            go_build(module, version, package, cached, log=log, ldflags=ldflags)
        except ToolError as error:
            raise ToolError(
                f"{name} {version}: Go build failed ({error}); put a {name} v{version} binary"
                f" at {cached} by hand"
            ) from error
    found = reported_version(cached)
    if found != f"v{version}":
        raise ToolError(f"{name} at {cached} reports {found!r}, not v{version}")
    return cached


def reported_version(binary: Path) -> str | None:
    """What ``binary version`` prints (kustomize and skaffold both answer this way)."""
    try:
        out = subprocess.run(
            [binary, "version"], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def go_module_dir(module: str, version: str) -> Path:
    """The unpacked source of ``module@version`` from the Go module proxy (or the local
    module cache): where the Dapr and prometheus-operator CRDs are published.
    https://go.dev/ref/mod#go-mod-download"""
    go = shutil.which("go")
    if go is None:
        raise ToolError("the Go toolchain is not on PATH (https://go.dev/doc/install)")
    download = json.loads(_run([go, "mod", "download", "-json", f"{module}@v{version}"], None))
    if "Error" in download:
        raise ToolError(f"{module}@v{version}: {download['Error'].splitlines()[0]}")
    return Path(download["Dir"])


# skaffold checks skaffold.yaml offline (`skaffold diagnose --yaml-only` parses it strictly
# and applies the profiles). 2.16.1 is the newest release the Go module proxy serves; its
# newest config schema is skaffold/v4beta13. https://skaffold.dev/docs/install/
SKAFFOLD_VERSION = "2.16.1"


def ensure_skaffold(log: Log) -> Path:
    """The pinned skaffold binary, built from the Go module proxy into the tool cache (a
    large build: about ten minutes on two cores the first time)."""
    module = "github.com/GoogleContainerTools/skaffold/v2"
    return _ensure_go_tool(
        "skaffold",
        SKAFFOLD_VERSION,
        module,
        f"{module}/cmd/skaffold",
        log=log,
        ldflags=f"-X {module}/pkg/skaffold/version.version=v{SKAFFOLD_VERSION}",
    )


# --- a Kubernetes control plane -----------------------------------------------------------
# Everything `orderflow cluster` runs (docs/kubernetes.md), built from the Go module proxy in
# three `go build`s, each cached by version in its own directory of the tool cache.

# The kind node image's minor (deploy/kind/cluster.yaml); v1.34.4 is the newest 1.34 patch
# release the proxy serves.
KUBERNETES_VERSION = "1.34.4"
# Built inside the Kubernetes wrapper: Helm 3.19 is written against the same 0.34 libraries,
# so it costs only its own packages. skaffold installs the Dapr chart with it.
HELM_VERSION = "3.19.5"
# The etcd release that Kubernetes 1.34.4 itself requires (its go.mod): built in the same
# `go build`, its gRPC, protobuf and OpenTelemetry packages are the API server's.
ETCD_VERSION = "3.6.4"
# kwok turns a Node object into a simulated kubelet (pods become Running and Ready, and
# report the resource usage they are given); metrics-server serves the metrics API from it.
# Both are written against the 0.33 libraries and build in one wrapper, apart from the 0.34
# one (kwok does not compile inside the Kubernetes wrapper). https://kwok.sigs.k8s.io/
KWOK_VERSION = "0.7.0"
METRICS_SERVER_VERSION = "0.8.0"


@dataclass(frozen=True)
class ClusterTools:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    helm: Path
    kwok: Path
    metrics_server: Path
    sentry: Path
    injector: Path


def ensure_cluster_tools(log: Log) -> ClusterTools:
    """The control plane's binaries: cached, or built (about 11 minutes on two cores the
    first time, under the cache lock)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    kubernetes = root / f"kubernetes-{KUBERNETES_VERSION}-helm-{HELM_VERSION}-etcd-{ETCD_VERSION}"
    simulation = root / f"kwok-{KWOK_VERSION}-metrics-server-{METRICS_SERVER_VERSION}"
    dapr = root / f"dapr-control-plane-{DAPR_VERSION}"
    # Cached: no need to wait for the lock (another run may be building something else).
    if all(bundle.is_dir() for bundle in (kubernetes, simulation, dapr)):
        return _cluster_tools(kubernetes, simulation, dapr)
    with _exclusive(root / ".lock"):
        _ensure_bundle(
            kubernetes,
            lambda output: go_build(
                "k8s.io/kubernetes",
                KUBERNETES_VERSION,
                {
                    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
                    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
                    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
                    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
                    "helm": "helm.sh/helm/v3/cmd/helm",
                    "etcd": "go.etcd.io/etcd/server/v3",
                },
                output,
                log=log,
                requires=[
                    f"helm.sh/helm/v3 v{HELM_VERSION}",
                    f"go.etcd.io/etcd/server/v3 v{ETCD_VERSION}",
                ],
                replaces=staging_replaces,
                ldflags=f"{_kubernetes_version_ldflags()}"
                f" -X helm.sh/helm/v3/internal/version.version=v{HELM_VERSION}",
            ),
        )
        _ensure_bundle(
            simulation,
            lambda output: go_build(
                "sigs.k8s.io/kwok",
                KWOK_VERSION,
                {
                    "kwok": "sigs.k8s.io/kwok/cmd/kwok",
                    "metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server",
                },
                output,
                log=log,
                requires=[f"sigs.k8s.io/metrics-server v{METRICS_SERVER_VERSION}"],
            ),
        )
        ensure_dapr_control_plane(root, log)
    return _cluster_tools(kubernetes, simulation, dapr)


def ensure_dapr_control_plane(root: Path, log: Log) -> Path:
    """Dapr's sentry and sidecar injector, built together (the injector costs about a
    minute more than sentry alone, once daprd's packages are compiled): the local stack
    runs sentry, the local control plane both. Called under the cache lock."""
    dapr = root / f"dapr-control-plane-{DAPR_VERSION}"
    _ensure_bundle(
        dapr,
        lambda output: go_build(
            "github.com/dapr/dapr",
            DAPR_VERSION,
            {
                "sentry": "github.com/dapr/dapr/cmd/sentry",
                "injector": "github.com/dapr/dapr/cmd/injector",
            },
            output,
            log=log,
            ldflags=f"-X github.com/dapr/dapr/pkg/buildinfo.version={DAPR_VERSION}",
        ),
    )
    return dapr


def _cluster_tools(kubernetes: Path, simulation: Path, dapr: Path) -> ClusterTools:
    return ClusterTools(
        etcd=kubernetes / "etcd",
        kube_apiserver=kubernetes / "kube-apiserver",
        kube_controller_manager=kubernetes / "kube-controller-manager",
        kube_scheduler=kubernetes / "kube-scheduler",
        kubectl=kubernetes / "kubectl",
        helm=kubernetes / "helm",
        kwok=simulation / "kwok",
        metrics_server=simulation / "metrics-server",
        sentry=dapr / "sentry",
        injector=dapr / "injector",
    )


def _ensure_bundle(directory: Path, build: Callable[[Path], None]) -> None:
    """A directory of binaries built together: it only exists once the build is complete
    (go_build renames it into place), so its presence is the cache hit."""
    if not directory.is_dir():
        try:
            build(directory)
        except ToolError as error:
            raise ToolError(
                f"{directory.name}: Go build failed ({error}); docs/kubernetes.md says what"
                " it builds"
            ) from error


def staging_replaces(go_mod: str) -> list[str]:
    """k8s.io/kubernetes replaces each of its staging repositories (k8s.io/api, ...) with
    a directory inside itself, which a module that requires it cannot see: point each at
    its published release instead, v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
    https://github.com/kubernetes/kubernetes/blob/master/staging/README.md"""
    published = "v0." + KUBERNETES_VERSION.split(".", 1)[1]
    return [
        f"{match.group(1)} => {match.group(1)} {published}"
        for match in re.finditer(
            r"^\s*(k8s\.io/[\w.-]+) => \./staging/src/\1\s*$", go_mod, re.MULTILINE
        )
    ]


# --- a real node (`make cluster` without Docker; orderflow_devtools.node) -----------------
# kubelet and kube-proxy come from the same Kubernetes module as the control plane, built in
# the same wrapper (one `go build`, cached by version); the container runtime, image tools
# and CNI plugins are Debian's packages (installed as root with apt-get); the pause image is
# compiled from the Kubernetes module's own build/pause source with gcc.
# https://kubernetes.io/docs/setup/production-environment/container-runtimes/
# The tag Kubernetes 1.34 itself uses for its sandbox image (cmd/kubeadm constants).
PAUSE_VERSION = "3.10.1"
# binary => the Debian 12 package that ships it.
NODE_PACKAGES = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "buildah": "buildah",
    "skopeo": "skopeo",
    "mmdebstrap": "mmdebstrap",
    "docker-registry": "docker-registry",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "gcc": "gcc",
    "strip": "binutils",
    # Carries the API server's port out of the node's network namespace.
    "socat": "socat",
}
# Debian's containernetworking-plugins puts the CNI plugins here.
DEBIAN_CNI_DIR = Path("/usr/lib/cni")


@dataclass(frozen=True)
class NodeTools:
    kubelet: Path
    kube_proxy: Path
    # An OCI image archive (oci-archive:) of the pause container.
    pause_image: Path
    binaries: Mapping[str, Path]
    cni_dir: Path


def ensure_node_tools(log: Log) -> NodeTools:
    """kubelet and kube-proxy (built, cached), the Debian packages a node needs, and the
    pause image (built, cached)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    cni_bridge = str(DEBIAN_CNI_DIR / "bridge")
    binaries = ensure_debian_packages(
        {**NODE_PACKAGES, cni_bridge: "containernetworking-plugins"}, log
    )
    node = root / f"kubernetes-node-{KUBERNETES_VERSION}"
    pause = root / f"pause-{PAUSE_VERSION}" / "pause.oci.tar"
    with _exclusive(root / ".lock"):
        _ensure_bundle(
            node,
            lambda output: go_build(
                "k8s.io/kubernetes",
                KUBERNETES_VERSION,
                {
                    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
                    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
                },
                output,
                log=log,
                replaces=staging_replaces,
                ldflags=_kubernetes_version_ldflags(),
            ),
        )
        if not pause.exists():
            _build_pause_image(pause, binaries, log)
    return NodeTools(
        kubelet=node / "kubelet",
        kube_proxy=node / "kube-proxy",
        pause_image=pause,
        binaries=binaries,
        cni_dir=binaries[cni_bridge].parent,
    )


def _kubernetes_version_ldflags() -> str:
    major, minor, _ = KUBERNETES_VERSION.split(".")
    return (
        f"-X k8s.io/component-base/version.gitVersion=v{KUBERNETES_VERSION}"
        f" -X k8s.io/component-base/version.gitMajor={major}"
        f" -X k8s.io/component-base/version.gitMinor={minor}"
    )


def ensure_debian_packages(wanted: Mapping[str, str], log: Log) -> dict[str, Path]:
    """``{binary: package}``: each binary found on PATH (or at its path, if absolute), the missing
    ones' packages installed in one apt-get run, with services kept from starting (Debian's
    docker-registry package would start a registry on every interface): a policy-rc.d that
    refuses them, as Debian's container images ship. https://manpages.debian.org/bookworm/
    init-system-helpers/invoke-rc.d.8.en.html"""

    def find(binary: str) -> Path | None:
        if binary.startswith("/"):
            return Path(binary) if Path(binary).exists() else None
        found = shutil.which(binary)
        return Path(found) if found else None

    missing = sorted({package for binary, package in wanted.items() if find(binary) is None})
    if missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise ToolError(
                f"{', '.join(missing)}: not installed, and they can be installed here only as"
                " root with apt-get (Debian 12); elsewhere use kind with Docker"
                " (docs/kubernetes.md)"
            )
        log(f"installing the Debian packages {' '.join(missing)}")
        policy = Path("/usr/sbin/policy-rc.d")
        ours = not policy.exists()
        if ours:
            policy.write_text("#!/bin/sh\n# services are not started on install\nexit 101\n")
            policy.chmod(0o755)
        try:
            _apt_install(missing)
        finally:
            if ours:
                policy.unlink()
    found = {binary: find(binary) for binary in wanted}
    absent = [binary for binary, path in found.items() if path is None]
    if absent:
        raise ToolError(f"{', '.join(absent)}: still not found after installing their packages")
    return {binary: path for binary, path in found.items() if path is not None}


def _build_pause_image(archive: Path, binaries: Mapping[str, Path], log: Log) -> None:
    """The sandbox ("pause") container every pod starts with: Kubernetes' build/pause C
    program, compiled static, in a one-layer OCI image archive written here (no image tool
    needed). https://github.com/opencontainers/image-spec/blob/main/image-layout.md"""
    log(f"building the pause image {PAUSE_VERSION} from k8s.io/kubernetes build/pause (gcc)")
    source = go_module_dir("k8s.io/kubernetes", f"{KUBERNETES_VERSION}") / "build/pause/linux"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orderflow-pause-") as work:
        binary = Path(work) / "pause"
        _run(
            [
                *(str(binaries["gcc"]), "-Os", "-Wall", "-Werror", "-static"),
                *(f"-DVERSION=v{PAUSE_VERSION}", "-o", str(binary), str(source / "pause.c")),
            ],
            cwd=None,
        )
        _run([str(binaries["strip"]), str(binary)], cwd=None)
        write_oci_archive(
            archive,
            files_layer({"pause": binary.read_bytes()}),
            ref=PAUSE_VERSION,
            entrypoint=["/pause"],
            user="65535:65535",
        )


def files_layer(files: Mapping[str, bytes]) -> bytes:
    """An image layer (an uncompressed tar) of executables at the root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            layer.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def write_oci_archive(
    archive: Path,
    layer: bytes,
    *,
    ref: str,
    entrypoint: Sequence[str] = (),
    env: Sequence[str] = (),
    user: str = "",
) -> None:
    """A one-layer linux image, as an OCI image layout in a tar archive: the form that
    skopeo's oci-archive: transport reads. https://github.com/opencontainers/image-spec"""
    image_config: dict[str, object] = {"Entrypoint": list(entrypoint) or None, "Env": list(env)}
    if user:
        image_config["User"] = user
    config = json.dumps(
        {
            "architecture": _goarch(),
            "os": "linux",
            "config": image_config,
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
            # One entry per layer: buildah refuses a base image whose history and layers
            # do not match.
            "history": [{"created_by": "orderflow_devtools.tools.write_oci_archive"}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **_descriptor("application/vnd.oci.image.manifest.v1+json", manifest),
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    entries = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{_digest(blob)[7:]}": blob for blob in (layer, config, manifest)},
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, mode="w") as out:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            out.addfile(info, io.BytesIO(content))
    partial.replace(archive)


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}


def _goarch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)

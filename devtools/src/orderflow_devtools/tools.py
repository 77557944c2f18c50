"""Provision the binaries the local stack and the tests run, pinned and cached outside the
repository, keyed by version, so that a fresh clone reuses what an earlier one built.

For each tool, in order: the cached copy; the same version already installed (PATH, and
``~/.dapr/bin`` where ``dapr init`` puts daprd); the official release download (daprd only,
fails fast without internet); a build from the Go module proxy (daprd, Jaeger); the Debian
package (Redis, Prometheus, promtool) when we are root and have apt-get. When none works
the error names the tool, says why, and how to install it by hand.
"""

import fcntl
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# The runtime's minor version follows the Python SDK's (1.18). 1.18.2 is the newest 1.18.x
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
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        ):
            result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if result.returncode != 0:
                raise ToolError(
                    f"{binary}: `{' '.join(command)}` failed: {_last_line(result.stderr)}"
                )
        found = shutil.which(binary)
        if found:
            return Path(found)
    raise ToolError(
        f"{binary}: not on PATH, and it can be installed here only as root with apt-get;"
        f" install the package {package} by hand (e.g. `sudo apt-get install {package}`)"
    )


def go_build(
    module: str,
    version: str,
    package: str,
    output: Path,
    *,
    log: Log,
    tags: str = "",
    ldflags: str = "",
) -> None:
    """Build ``package`` of ``module@version`` from the Go module proxy.

    ``go install module@version`` refuses modules whose go.mod has ``replace`` directives
    (github.com/dapr/dapr has several), so we build from a throwaway wrapper module that
    requires the module and repeats its ``replace`` lines. ``-mod=mod`` fetches only the
    packages the chosen tags compile, where ``go mod tidy`` would fetch every component's.
    https://go.dev/ref/mod#go-install
    """
    go = shutil.which("go")
    if go is None:
        raise ToolError("the Go toolchain is not on PATH (https://go.dev/doc/install)")
    log(f"building {package}@v{version} from the Go module proxy (minutes on a cold cache)")
    download = _run([go, "mod", "download", "-json", f"{module}@v{version}"], cwd=None)
    go_mod = Path(json.loads(download)["GoMod"]).read_text()
    go_directive = re.search(r"^go (\S+)$", go_mod, re.MULTILINE)
    with tempfile.TemporaryDirectory(prefix="orderflow-build-") as work:
        workdir = Path(work)
        (workdir / "go.mod").write_text(
            "module orderflow.local/build\n\n"
            f"go {go_directive.group(1) if go_directive else '1.26'}\n\n"
            f"require {module} v{version}\n\n"
            + "".join(f"replace {line}\n" for line in replace_directives(go_mod))
        )
        partial = output.with_suffix(".partial")
        command = [go, "build", "-mod=mod", "-trimpath", "-o", str(partial)]
        if tags:
            command += ["-tags", tags]
        command += ["-ldflags", f"-s -w {ldflags}".strip(), package]
        _run(command, cwd=workdir)
    partial.replace(output)


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

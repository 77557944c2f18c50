"""``orderflow cluster secrets``: the Secrets the services' token annotations name, made
in the cluster with random contents, so that no token is ever in a committed file.

Per service, ``<app>-dapr-api-token`` (``dapr.io/api-token-secret``: the sidecar refuses
API calls without it) and ``<app>-app-api-token`` (``dapr.io/app-token-secret``: the
sidecar sends it to the app), each with its token under the key ``token`` that the
sidecar injector reads; and ``storefront-fault-token`` for the chaos overlay's fault admin
API. A Secret that exists is left as it is: the running pods hold its token, and a new
one would lock their sidecar and app out of each other until both restarted.
https://docs.dapr.io/operations/security/api-token/
https://kubernetes.io/docs/concepts/configuration/secret/
"""

import json
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orderflow_devtools import runfile

NAMESPACE = "orderflow"
# Every service of the registry (dapr.yaml) has its two Secrets.
SERVICES = runfile.app_ids()
FAULT_SECRET = "storefront-fault-token"  # noqa: S105 - a Secret's name
TOKEN_BYTES = 32
NAMESPACE_FILE = Path(__file__).resolve().parents[4] / "deploy" / "base" / "namespace.yaml"


class SecretsError(Exception):
    """kubectl refused; the message is its last line."""


def dapr_api_secret(app_id: str) -> str:
    return f"{app_id}-dapr-api-token"


def app_api_secret(app_id: str) -> str:
    return f"{app_id}-app-api-token"


def wanted() -> dict[str, dict[str, str]]:
    """Every Secret, by name, with freshly made contents (its data keys and values)."""
    made: dict[str, dict[str, str]] = {}
    for app_id in SERVICES:
        made[dapr_api_secret(app_id)] = {"token": _token()}
        made[app_api_secret(app_id)] = {"token": _token()}
    made[FAULT_SECRET] = {"STOREFRONT_FAULT_TOKEN": _token()}
    return made


def ensure(kubectl: Sequence[str]) -> list[str]:
    """Create the namespace (as deploy/base/namespace.yaml has it) and each Secret that
    does not exist yet; return the names of those created. The tokens go to kubectl on
    its standard input, never on a command line."""
    _run(kubectl, "apply", "-f", str(NAMESPACE_FILE))
    listed = json.loads(_run(kubectl, "get", "secrets", "-n", NAMESPACE, "-o", "json"))
    existing = {item["metadata"]["name"] for item in listed["items"]}
    missing = {name: data for name, data in wanted().items() if name not in existing}
    if missing:
        items = [_secret(name, data) for name, data in missing.items()]
        listing = {"apiVersion": "v1", "kind": "List", "items": items}
        _run(kubectl, "create", "-f", "-", stdin=json.dumps(listing))
    return sorted(missing)


def kubectl_command(context: str | None) -> list[str]:
    found = shutil.which("kubectl")
    if found is None:
        raise SecretsError("kubectl is not on the PATH")
    return [found, *([f"--context={context}"] if context else [])]


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "orderflow"},
        },
        "type": "Opaque",
        "stringData": data,
    }


def _token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _run(kubectl: Sequence[str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [*kubectl, *args], input=stdin, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise SecretsError(f"kubectl {args[0]}: {lines[-1] if lines else 'failed'}")
    return result.stdout

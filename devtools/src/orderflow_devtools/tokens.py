"""The local stack's tokens, made on its first start and kept in the run directory.

Eleven random tokens: a Dapr API token per sidecar (DAPR_API_TOKEN: the sidecar refuses
every API call without it, and its app sends it), an app API token per app
(APP_API_TOKEN: the sidecar sends it with every call to its app, which refuses calls
without it), and storefront's fault admin token (STOREFRONT_FAULT_TOKEN). They live in
``<run dir>/secrets/tokens.json``, readable by its owner only, and never in a committed
file; ``orderflow fault``, the benchmarks and the tests read them from there.
https://docs.dapr.io/operations/security/api-token/
https://docs.dapr.io/operations/security/app-api-token/
"""

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = Path("secrets") / "tokens.json"
# 32 random bytes, URL-safe base64: header-safe, and far beyond guessing.
TOKEN_BYTES = 32
FAULT_TOKEN = "STOREFRONT_FAULT_TOKEN"  # noqa: S105 - the name of a variable
DAPR_API_TOKEN = "DAPR_API_TOKEN"  # noqa: S105 - the name of a variable
APP_API_TOKEN = "APP_API_TOKEN"  # noqa: S105 - the name of a variable


class TokenError(Exception):
    """The tokens file cannot be read; the message is the one-line cause."""


@dataclass(frozen=True)
class Tokens:
    """Each app's two tokens, by app id, and the fault admin token."""

    dapr_api: dict[str, str]
    app_api: dict[str, str]
    fault: str

    def pair(self, app_id: str) -> dict[str, str]:
        """What an app and its sidecar are both given: the sidecar requires the first
        and sends the second; the app sends the first and requires the second."""
        return {DAPR_API_TOKEN: self.dapr_api[app_id], APP_API_TOKEN: self.app_api[app_id]}

    def sidecar_headers(self, app_id: str) -> dict[str, str]:
        """For a call to ``app_id``'s sidecar API."""
        return {"dapr-api-token": self.dapr_api[app_id]}

    def app_headers(self, app_id: str) -> dict[str, str]:
        """For a call straight to ``app_id``, as its sidecar makes it."""
        return {"dapr-api-token": self.app_api[app_id]}


def path(run_dir: Path) -> Path:
    return run_dir / FILE


def ensure(run_dir: Path, app_ids: Sequence[str]) -> Tokens:
    """The tokens in ``run_dir``, made first for what lacks one (a first start, or an
    app added since)."""
    file = path(run_dir)
    saved = _read(file) if file.exists() else {}
    apps = {app_id: dict(saved.get("apps", {}).get(app_id, {})) for app_id in app_ids}
    for pair in apps.values():
        for name in (DAPR_API_TOKEN, APP_API_TOKEN):
            pair.setdefault(name, _new())
    content = {"apps": apps, FAULT_TOKEN: saved.get(FAULT_TOKEN) or _new()}
    if content != saved:
        _write(file, content)
    return _tokens(content)


def load(run_dir: Path) -> Tokens:
    """The tokens a stack started from ``run_dir`` uses."""
    file = path(run_dir)
    if not file.exists():
        raise TokenError(f"{file} does not exist: start the stack once with `make up`")
    return _tokens(_read(file))


def _new() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _tokens(content: dict[str, Any]) -> Tokens:
    apps: dict[str, dict[str, str]] = content["apps"]
    return Tokens(
        dapr_api={app_id: str(pair[DAPR_API_TOKEN]) for app_id, pair in apps.items()},
        app_api={app_id: str(pair[APP_API_TOKEN]) for app_id, pair in apps.items()},
        fault=str(content[FAULT_TOKEN]),
    )


def _read(file: Path) -> dict[str, Any]:
    try:
        content = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise TokenError(f"{file}: cannot read the tokens: {error}") from error
    if not isinstance(content, dict) or not isinstance(content.get("apps"), dict):
        raise TokenError(f"{file}: not a tokens file (remove it to make new tokens)")
    return content


def _write(file: Path, content: dict[str, Any]) -> None:
    """Owner-only from the start: the file is created with mode 0600 (and its directory
    0700), never written first and narrowed after."""
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    file.parent.chmod(0o700)
    partial = file.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a stale partial file kept its own mode
    with os.fdopen(descriptor, "w") as out:
        json.dump(content, out, indent=2)
        out.write("\n")
    partial.replace(file)

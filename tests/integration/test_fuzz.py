"""Schemathesis against the OpenAPI of every app, on the real stack (each app with its
real daprd, Redis behind them): no route answers a 5xx, and every answer is one its
OpenAPI documents, status, content type, headers and body.

Against the running apps rather than in-process, so that what answers is what serves in
production: the real sidecar's state, invocation and pub/sub behind every route. The run
is seeded, so a failure replays. The fuzzer calls each app as its sidecar does, with the
app's API token (the OpenAPI declares it as a security scheme), and checks too that an
operation that requires it refuses a call without it (ignored_auth); the fault-flag
routes are fuzzed without their own token (the fuzzer must not switch faults on), so they
answer 403 or 422 only.
https://schemathesis.readthedocs.io/en/stable/"""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration

APPS = ("storefront", "inventory", "payments", "fulfillment", "notifications")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
)
# Cases per operation and phase: enough to reach every documented answer of these small
# APIs (about 300 to 500 requests per app), few enough for CI.
EXAMPLES = 25
SEED = "20261202"


@pytest.mark.parametrize("app_id", APPS)
def test_no_route_answers_a_5xx_or_off_its_openapi(
    local_stack: LocalStack, app_id: str, tmp_path: Path
) -> None:
    schema_url = f"{local_stack.app_url(app_id)}/openapi.json"
    paths = httpx.get(schema_url).raise_for_status().json()["paths"]
    operations = {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}
    junit = tmp_path / "junit.xml"

    run = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            schema_url,
            f"--checks={','.join(CHECKS)}",
            f"--max-examples={EXAMPLES}",
            f"--seed={SEED}",
            "--workers=1",
            f"--header=dapr-api-token: {local_stack.tokens.app_api[app_id]}",
            "--report=junit",
            f"--report-junit-path={junit}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    # The run's own summary (cases generated, failures) beside its report, for a reader.
    (tmp_path / "schemathesis.txt").write_text(run.stdout)
    assert run.returncode == 0, run.stdout[-6000:]
    suite = ET.parse(junit).getroot().find("testsuite")  # noqa: S314 - our own report
    assert suite is not None
    # Every operation the OpenAPI lists was tested (and the stateful phase, where links
    # between operations allow one), none failed.
    tested = {case.get("name") for case in suite.iter("testcase")} - {"Stateful tests"}
    assert tested == operations
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")

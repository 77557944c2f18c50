"""Every service image comes from the one services/Dockerfile: pinned bases, the runtime and
dev targets, a numeric non-root user that the pods' securityContext matches."""

import re
from pathlib import Path

import pytest

from orderflow_devtools.k8s.images import check_dockerfile, stages
from orderflow_devtools.k8s.render import Manifest

SERVICES = Path(__file__).resolve().parents[2] / "services"


DOCKERFILE = SERVICES / "Dockerfile"


def test_one_dockerfile_builds_every_service() -> None:
    assert DOCKERFILE.is_file()
    assert sorted(SERVICES.glob("*/Dockerfile")) == []


def test_the_dockerfile_holds_to_the_rules() -> None:
    assert check_dockerfile(DOCKERFILE.read_text()) == []


def test_the_service_pods_run_as_the_image_user(
    rendered: dict[str, list[Manifest]], service_dirs: set[str]
) -> None:
    """runAsNonRoot only holds if the uid the pod runs as is the one the image was built
    for (the source is owned by it in the dev target)."""
    runtime = next(s for s in stages(DOCKERFILE.read_text()) if s.name == "runtime")
    user = next(args for name, args in reversed(runtime.instructions) if name == "USER")
    uid, _, gid = user.partition(":")
    for service in service_dirs:
        for objects in rendered.values():
            deployment = next(
                o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == service
            )
            context = deployment["spec"]["template"]["spec"]["securityContext"]
            assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid)


GOOD = DOCKERFILE.read_text()
_DEV = GOOD.index("FROM deps AS dev")
_RUNTIME = GOOD.index("FROM ${PYTHON_IMAGE} AS runtime")

BROKEN = {
    "root user": (GOOD.replace("USER 65532:65532", "USER 0"), "is not a numeric non-root uid"),
    "user by name": (GOOD.replace("USER 65532:65532", "USER app"), "is not a numeric non-root"),
    "no user": (GOOD.replace("USER 65532:65532\n", ""), "sets no USER"),
    "moving base tag": (
        re.sub(r"python:3\.11\.\d+-slim-trixie", "python:slim", GOOD),
        "is not pinned to a version",
    ),
    "latest tag": (
        re.sub(r"uv:\d+\.\d+\.\d+", "uv:latest", GOOD),
        "ghcr.io/astral-sh/uv:latest is not pinned",
    ),
    "dev as the last stage": (
        GOOD[:_DEV] + GOOD[_RUNTIME:] + "\n" + GOOD[_DEV:_RUNTIME],
        "the last stage (what a plain `docker build` makes) is not runtime",
    ),
    "a fixed command": (
        GOOD.replace(
            'CMD ["sh", "-c", "exec python -m \\"$APP_MODULE\\""]',
            'CMD ["python", "-m", "payments"]',
        ),
        "stage runtime: CMD does not run python -m $APP_MODULE",
    ),
    "no module from the build arg": (
        GOOD.replace("    APP_MODULE=${SERVICE}", "    APP_MODULE=storefront"),
        "APP_MODULE is not set from the SERVICE build arg",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_dockerfile_check_refuses(case: str) -> None:
    text, expected = BROKEN[case]
    assert text != GOOD

    problems = check_dockerfile(text)

    assert any(expected in problem for problem in problems), problems


def test_the_locust_image_runs_as_its_pods_user(rendered: dict[str, list[Manifest]]) -> None:
    text = (SERVICES.parent / "loadtest" / "Dockerfile").read_text()
    runtime = stages(text)[-1]
    pods = [
        obj["spec"]["template"]["spec"]["securityContext"]
        for obj in rendered["overlays/load"]
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].startswith("locust-")
    ]

    assert runtime.name == "runtime"
    assert ("USER", "65532:65532") in runtime.instructions
    assert [(p["runAsUser"], p["runAsGroup"]) for p in pods] == [(65532, 65532)] * 2

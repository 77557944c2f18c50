"""Read the services' Dockerfiles closely enough to check the rules we hold them to:
pinned bases, a ``runtime`` last stage and a ``dev`` stage, both running as a numeric
non-root user (so Kubernetes can verify runAsNonRoot), and the service as the command.
https://docs.docker.com/reference/dockerfile/
"""

import re
from dataclasses import dataclass, field

# The targets skaffold.yaml builds: runtime (the default, last) and dev (file sync).
TARGETS = ("runtime", "dev")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    split = [[*line.split(None, 1), ""] for line in joined]
    return [(parts[0].upper(), parts[1]) for parts in split]


def stages(text: str) -> list[Stage]:
    """The build stages, their bases resolved through the ARGs declared before them."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for instruction, arguments in instructions(text):
        if instruction == "ARG" and not found:
            name, _, default = arguments.partition("=")
            args[name.strip()] = default.strip()
        elif instruction == "FROM":
            parts = arguments.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else str(len(found))
            found.append(Stage(name=name, base=base))
        elif found:
            found[-1].instructions.append((instruction, arguments))
    return found


def check_dockerfile(text: str) -> list[str]:
    found = stages(text)
    by_name = {stage.name: stage for stage in found}
    problems = [
        f"stage {stage.name}: base {stage.base} is not pinned to a version"
        for stage in found
        if stage.base not in by_name and not _pinned(stage.base)
    ]
    missing = [target for target in TARGETS if target not in by_name]
    problems += [f"no {target} stage" for target in missing]
    if found and found[-1].name != "runtime":
        problems.append("the last stage (what a plain `docker build` makes) is not runtime")
    for target in TARGETS:
        if target in missing:
            continue
        user = _user(by_name[target], by_name)
        if user is None:
            problems.append(f"stage {target}: sets no USER, so it runs as its base's user")
        elif not re.fullmatch(r"[1-9]\d*(:\d+)?", user):
            problems.append(f"stage {target}: USER {user} is not a numeric non-root uid")
        command = _last(by_name[target], "CMD") or ""
        if "python -m" not in command or "$APP_MODULE" not in command:
            problems.append(f"stage {target}: CMD does not run python -m $APP_MODULE")
        if "APP_MODULE=${SERVICE}" not in (_last(by_name[target], "ENV") or ""):
            problems.append(f"stage {target}: APP_MODULE is not set from the SERVICE build arg")
    return problems


def _pinned(image: str) -> bool:
    """A tag with a version number (or a digest), not a moving one like latest."""
    if "@sha256:" in image:
        return True
    _, _, tag = image.rpartition(":")
    return "/" not in tag and tag != "latest" and bool(re.search(r"\d+\.\d+", tag))


def _user(stage: Stage, by_name: dict[str, Stage]) -> str | None:
    """The user a stage ends with, following it through earlier stages it builds on."""
    user = _last(stage, "USER")
    if user is None and stage.base in by_name:
        return _user(by_name[stage.base], by_name)
    return user


def _last(stage: Stage, instruction: str) -> str | None:
    values = [arguments for name, arguments in stage.instructions if name == instruction]
    return values[-1] if values else None

"""Tool provisioning: the parts that need no network or build."""

import os
from pathlib import Path

import pytest

from orderflow_devtools import tools

GO_MOD = """module example.com/thing

go 1.26.6

require (
\tgithub.com/a/b v1.0.0
)

replace (
\t// a fork with a fix
\tgithub.com/a/b => github.com/c/b v1.0.1

\tgithub.com/d/e v0.1.0 => github.com/f/e v0.2.0 // pinned for licences
)

replace github.com/g/h => github.com/g/h v1.2.3
// replace github.com/x/y => ../y
"""


def test_replace_directives_come_from_blocks_and_single_lines() -> None:
    assert tools.replace_directives(GO_MOD) == [
        "github.com/a/b => github.com/c/b v1.0.1",
        "github.com/d/e v0.1.0 => github.com/f/e v0.2.0",
        "github.com/g/h => github.com/g/h v1.2.3",
    ]


def test_a_debian_tool_that_cannot_be_installed_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    with pytest.raises(tools.ToolError) as caught:
        tools.ensure_debian("redis-server", "redis-server", lambda _message: None)

    assert str(caught.value) == (
        "redis-server: not on PATH, and it can be installed here only as root with apt-get;"
        " install the package redis-server by hand (e.g. `sudo apt-get install redis-server`)"
    )


def test_a_binary_that_does_not_run_has_no_version(tmp_path: Path) -> None:
    assert tools.daprd_version(tmp_path / "daprd") is None

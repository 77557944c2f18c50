"""The local stack's tokens: made once, owner-only, kept across starts."""

import json
import stat
from pathlib import Path

import pytest

from orderflow_devtools import tokens

APPS = ["storefront", "inventory", "payments", "fulfillment", "notifications"]


def test_the_first_start_makes_eleven_distinct_tokens_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    made = tokens.ensure(tmp_path, APPS)
    file = tmp_path / "secrets" / "tokens.json"

    values = [*made.dapr_api.values(), *made.app_api.values(), made.fault]
    assert (len(values), len(set(values))) == (11, 11)
    assert {len(value) for value in values} == {43}
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert json.loads(file.read_text())["apps"]["payments"] == made.pair("payments")
    assert sorted(path.name for path in file.parent.iterdir()) == ["tokens.json"]


def test_a_later_start_keeps_the_tokens_and_adds_a_new_apps(tmp_path: Path) -> None:
    first = tokens.ensure(tmp_path, APPS[:4])

    again = tokens.ensure(tmp_path, APPS)

    assert {app: again.pair(app) for app in APPS[:4]} == {app: first.pair(app) for app in APPS[:4]}
    assert again.fault == first.fault
    assert set(again.dapr_api) == set(APPS)
    assert tokens.load(tmp_path) == again


def test_reading_tokens_that_were_never_made_says_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(tokens.TokenError, match=r"does not exist: start the stack once"):
        tokens.load(tmp_path)

"""``orderflow-pictures dashboard`` refuses what it cannot draw, with a one-line cause."""

from pathlib import Path

import pytest

from orderflow_devtools import pictures

REPO = Path(__file__).resolve().parents[2]


def test_an_unknown_dashboard_names_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)

    code = pictures.main(["dashboard", "resilency", "--out", str(tmp_path)])

    assert code == pictures.EXIT_FAILURE
    assert capsys.readouterr().err == (
        "orderflow-pictures: no dashboard dashboards/resilency.json;"
        " choose one of dapr, load, resiliency, scaling, service-overview\n"
    )
    assert list(tmp_path.iterdir()) == []

"""Fault flags: parsing, and what each does to a request."""

import pytest
from fastapi import HTTPException

from orderflow_common.faults import FaultFlags, Faults, parse_flags


def test_flags_default_to_off_and_parse_from_configuration_items() -> None:
    assert parse_flags("payments", {}) == FaultFlags()
    assert parse_flags(
        "payments", {"payments.error_rate": "30", "payments.down": "true", "inventory.down": "1"}
    ) == FaultFlags(error_rate=30, down=True)


def test_an_invalid_value_is_ignored_and_the_last_good_flags_stay() -> None:
    faults = Faults("payments")
    faults.update({"payments.latency_ms": "5"})
    faults.update({"payments.error_rate": "150"})

    assert faults.flags == FaultFlags(latency_ms=5)


@pytest.mark.parametrize(
    ("values", "attempt", "status"),
    [
        ({"payments.down": "true"}, None, 503),
        ({"payments.error_rate": "100"}, None, 500),
        ({"payments.fail_attempts": "2"}, 2, 500),
    ],
)
async def test_request_flags_answer_with_their_status(
    values: dict[str, str], attempt: int | None, status: int
) -> None:
    faults = Faults("payments")
    faults.update(values)

    with pytest.raises(HTTPException) as caught:
        await faults.on_request(attempt)

    assert caught.value.status_code == status


async def test_fail_attempts_lets_later_attempts_through() -> None:
    faults = Faults("payments")
    faults.update({"payments.fail_attempts": "2"})

    await faults.on_request(3)
    await faults.on_request(None)


def test_poison_is_decided_by_event_id_so_redeliveries_fail_alike() -> None:
    faults = Faults("notifications")
    faults.update({"notifications.poison_rate": "50"})
    ids = [f"event-{n}" for n in range(400)]

    first = [faults.is_poison(event_id) for event_id in ids]

    assert first == [faults.is_poison(event_id) for event_id in ids]
    assert 150 < sum(first) < 250

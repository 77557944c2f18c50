"""An order and its states: placed → paid → shipped → notified, or failed with a reason.
Every step is kept in the order's history, so each transition can be seen."""

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["placed", "paid", "shipped", "notified", "failed"]
PROGRESS: tuple[Status, ...] = ("placed", "paid", "shipped", "notified")
_RANK: dict[Status, int] = {status: rank for rank, status in enumerate((*PROGRESS, "failed"))}


class Step(BaseModel):
    status: Status
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    reason: str | None = None


class Order(BaseModel):
    order_id: str
    customer_id: str
    items: dict[str, int]
    amount_cents: int | None = None
    status: Status
    reason: str | None = None
    history: list[Step]

    def advance(self, status: Status, reason: str | None = None) -> bool:
        """Record a step; False when it was recorded before (a duplicate event). The
        status is the furthest step reached, whatever order the events came in."""
        if any(step.status == status for step in self.history):
            return False
        self.history.append(Step(status=status, reason=reason))
        # Shipped and notified can arrive in either order (a write that lost a race is
        # redelivered later); the history reads in the order of the flow, each step
        # with the time it was recorded.
        self.history.sort(key=lambda step: _RANK[step.status])
        if status == "failed":
            self.status, self.reason = "failed", reason
        elif self.status != "failed":
            self.status = max(
                (step.status for step in self.history if step.status != "failed"),
                key=PROGRESS.index,
            )
        return True


def order_key(order_id: str) -> str:
    return f"order-{order_id}"

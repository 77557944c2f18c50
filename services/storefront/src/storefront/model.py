"""An order and its states: placed → paid → shipped → notified, or failed with a reason.
Every step is kept in the order's history, so each transition can be seen.

storefront writes the order itself while it places it (placed, paid, or failed); the
steps that events bring (shipped, notified) are each written once to a key of their own
beside it, and reading an order puts them together. Two events of one order can then
arrive at once without contending for one document (a lost ETag race would cost a
redelivery and its wait), and a duplicate event finds its step already written."""

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

    def advance(self, status: Status, reason: str | None = None) -> None:
        """Record a step now."""
        self.record(Step(status=status, reason=reason))

    def record(self, step: Step) -> None:
        """Add ``step`` to the history, unless it holds that status already. The status
        is the furthest step reached, whatever order the steps came in."""
        if any(earlier.status == step.status for earlier in self.history):
            return
        self.history.append(step)
        # Shipped and notified can be recorded in either order (customer-notified can
        # overtake order-shipped); the history reads in the order of the flow, each step
        # with the time it was recorded.
        self.history.sort(key=lambda earlier: _RANK[earlier.status])
        if step.status == "failed":
            self.status, self.reason = "failed", step.reason
        elif self.status != "failed":
            self.status = max(
                (step.status for step in self.history if step.status != "failed"),
                key=PROGRESS.index,
            )


# The steps recorded from events, each in its own key (step_key).
EVENT_STEPS: tuple[Status, ...] = ("shipped", "notified")


def order_key(order_id: str) -> str:
    return f"order-{order_id}"


def step_key(order_id: str, status: Status) -> str:
    return f"order-{order_id}-{status}"

"""Typed FastAPI dependencies on what an app keeps in ``app.state`` (its settings, its
Dapr client, its fault flags, a service's own recorders): one way to write them all.
https://fastapi.tiangolo.com/tutorial/dependencies/"""

from collections.abc import Callable
from typing import TypeVar, cast

from fastapi import Request

T = TypeVar("T")


def from_state(attribute: str, kind: type[T]) -> Callable[[Request], T]:  # noqa: ARG001
    """A dependency that returns ``app.state.<attribute>`` as a ``kind`` (``kind`` is for
    the type checker: it names the type returned)."""

    def dependency(request: Request) -> T:
        return cast(T, getattr(request.app.state, attribute))

    dependency.__name__ = f"state_{attribute}"
    return dependency

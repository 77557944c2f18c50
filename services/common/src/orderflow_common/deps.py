"""Typed FastAPI dependencies on what an app's factory hands its routes: its settings,
its Dapr client, its fault flags, a service's own recorders. Each service declares its
``Annotated`` aliases in its own ``deps.py``; its ``create_app`` passes each value in.
https://fastapi.tiangolo.com/tutorial/dependencies/#share-annotated-dependencies"""

from typing import Annotated, Generic, TypeVar
from weakref import WeakKeyDictionary

from fastapi import Depends, FastAPI, Request

from orderflow_common.sidecar import DaprClient

T = TypeVar("T")


class Provided(Generic[T]):
    """A dependency on a value the app's factory passes in with :meth:`provide`. The
    dependency itself is the key: no name to mistype, and ``provide`` is type-checked
    against the routes that take it. A callable instance, which FastAPI calls per request.
    https://fastapi.tiangolo.com/advanced/advanced-dependencies/"""

    def __init__(self) -> None:
        # Weak, so that an app a test made and dropped takes its values with it.
        self._values: WeakKeyDictionary[object, T] = WeakKeyDictionary()

    def provide(self, app: FastAPI, value: T) -> None:
        self._values[app] = value

    def of(self, app: object) -> T:
        """The value given to ``app``, where code holds the app rather than a request: a
        lifespan, or a test's ``TestClient.app`` (typed as any ASGI app)."""
        return self._values[app]

    def __call__(self, request: Request) -> T:
        return self.of(request.app)


# Passed in by create_service_app's lifespan: the SDK client it opened (or a test's double).
get_dapr = Provided[DaprClient]()
DaprDep = Annotated[DaprClient, Depends(get_dapr)]

"""`RequestRoute`: the route class under which an endpoint that reads its own request is
called directly, past FastAPI's request handler.

The compatible endpoints take the Request and return a Response: the site software posts
JSON without a Content-Type, so they parse the body themselves (api/body.py). For such
an endpoint FastAPI's handler has nothing to do (no parameters to solve, no body field,
no response model), yet it cost about a tenth of an empty poll's CPU. FastAPI still
routes and documents the endpoint, and Starlette's `request_response` still turns what
it raises into answers through the app's exception handlers.

Any other endpoint under this class (one with parameters, dependencies or a return value
to serialize) goes through FastAPI's handler as usual.
"""

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, get_type_hints

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _reads_own_request(endpoint: Callable[..., Any]) -> bool:
    """Whether `endpoint` is `async def f(request: Request) -> <a Response>`."""
    if not inspect.iscoroutinefunction(endpoint):
        return False
    hints = get_type_hints(endpoint)
    parameters = list(inspect.signature(endpoint).parameters.values())
    returns = hints.get("return")
    return (
        len(parameters) == 1
        and hints.get(parameters[0].name) is Request
        and inspect.isclass(returns)
        and issubclass(returns, Response)
    )


class RequestRoute(APIRoute):
    """A route that calls an endpoint of the Request directly (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        if self.dependant.dependencies or not _reads_own_request(self.endpoint):
            return super().get_route_handler()
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler

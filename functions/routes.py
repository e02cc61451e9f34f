"""The HTTP API's one route table: the handlers, the local gateway, the OpenAPI document and the
API Gateway construct all read it, so a route is added in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Function = Literal["predict", "log_outcome"]
# Who may call a route: each group is one managed policy granting execute-api:Invoke on its routes.
Caller = Literal["predictions", "outcomes", "contract"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: Function
    has_body: bool
    callers: tuple[Caller, ...]
    summary: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)


ROUTES: tuple[Route, ...] = (
    Route("POST", "/predict", "predict", True, ("predictions",), "Predict one row or a batch"),
    Route("GET", "/model", "predict", False, ("predictions",), "The serving model's card"),
    Route("GET", "/health", "predict", False, ("predictions",), "Whether the model is loaded and answering"),
    Route(
        "GET",
        "/openapi.json",
        "predict",
        False,
        ("predictions", "contract"),
        "This API's OpenAPI 3.1 contract for the serving model",
    ),
    Route("POST", "/outcomes", "log_outcome", True, ("outcomes",), "Record ground truth for earlier requests"),
)

ROUTE_KEYS = frozenset(route.key for route in ROUTES)
FUNCTION_OF: dict[tuple[str, str], Function] = {route.key: route.function for route in ROUTES}


def routes_of(function: Function) -> tuple[Route, ...]:
    return tuple(route for route in ROUTES if route.function == function)


def methods_on(path: str) -> list[str]:
    """The methods the API defines on ``path`` (empty for an unknown path)."""
    return sorted(route.method for route in ROUTES if route.path == path)

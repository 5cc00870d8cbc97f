"""Routing: only documented operations exist (positive security model).

The path is read once (:mod:`apishield.core.normalize`) and matched against
the document's path templates. An undocumented path is 404 and an
undocumented method on a documented path is 405 with ``Allow`` (RFC 9110
§15.5.6), both before anything reaches the upstream. Routing is never put in
report mode: an operation that is not documented has no checks to report on.
"""

from __future__ import annotations

from apishield.core.exchange import Exchange
from apishield.core.normalize import parse_query, split_path
from apishield.core.stage import Stage
from apishield.openapi.compile import Operation
from apishield.openapi.router import Router
from apishield.problem import MethodNotAllowed, NotFound, Problem

__all__ = ["RouteStage"]


class RouteStage(Stage):
    name = "route"

    def __init__(self, router: Router[dict[str, Operation]]) -> None:
        self.router = router

    def on_request_head(self, ex: Exchange) -> None:
        try:
            segments = split_path(ex.request.raw_path)
            ex.query_pairs = parse_query(ex.request.query_string)
        except Problem as problem:
            self.reject(ex, problem)
            return
        hit = self.router.match(segments)
        if hit is None:
            self.reject(ex, NotFound(detail="No documented operation has this path."))
            return
        route, params = hit
        operation = route.target.get(ex.request.method)
        if operation is None:
            self.reject(ex, MethodNotAllowed.for_methods(route.target))
            return
        ex.operation = operation
        ex.path_params = params
        ex.segments = segments
        ex.decide(self.name, "allow", "documented operation", rule=operation.operation_id)

"""Request validation against the operation's parameters and request body.

Every parameter is deserialised by its style (OAS 3.1 §4.8.12.4), coerced
by its schema type and validated with the other parameters in one call;
required parameters must be present, repeated values of a scalar parameter
are refused (HTTP parameter pollution), and by default a query parameter the
operation does not declare is refused.

The body must be declared (RFC 9110 §8.6: a body on an operation that takes
none is refused), carry a declared media type (else 415, RFC 9110 §15.5.16),
fit the size limit (413, checked on ``Content-Length`` before reading and
again while streaming), parse strictly (:mod:`apishield.jsonstrict`) and
validate. What is forwarded is the re-serialised, validated value.

Violations are reported as RFC 9457 problems listing each one (location,
JSON pointer, reason) without the offending value.
"""

from __future__ import annotations

from typing import Any

from apishield.core.exchange import Exchange
from apishield.core.normalize import encode_query, parse_query
from apishield.core.stage import Mode, Stage
from apishield.jsonstrict import JSONRejected, dumps, parse
from apishield.openapi.compile import MediaSpec, Operation
from apishield.openapi.params import ParamSpec, coerce
from apishield.problem import (
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
    ValidationFailed,
    Violation,
)

__all__ = ["RequestValidationStage", "parse_cookies"]


def parse_cookies(values: list[bytes]) -> dict[str, str]:
    """Cookie header (RFC 6265 §5.4) to a mapping; the first value of a name wins."""
    out: dict[str, str] = {}
    for header in values:
        for piece in header.decode("latin-1").split(";"):
            name, sep, value = piece.strip().partition("=")
            if sep and name and name not in out:
                out[name] = value.strip('"')
    return out


def media_type_of(value: bytes | None) -> tuple[str, dict[str, str]] | None:
    if value is None:
        return None
    text = value.decode("latin-1")
    main, *params = text.split(";")
    out: dict[str, str] = {}
    for p in params:
        k, _, v = p.strip().partition("=")
        out[k.strip().lower()] = v.strip().strip('"').lower()
    return main.strip().lower(), out


class RequestValidationStage(Stage):
    name = "request_validation"

    def __init__(
        self,
        mode: Mode,
        op_modes: dict[str, Mode],
        reject_unknown_query: bool,
        max_body_bytes: int,
        max_json_depth: int,
    ) -> None:
        self.mode = mode
        self.op_modes = op_modes
        self.reject_unknown_query = reject_unknown_query
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    def mode_for(self, op: Operation) -> Mode:
        return self.op_modes.get(op.operation_id, self.mode)

    # -- head ----------------------------------------------------------------------------------
    def on_request_head(self, ex: Exchange) -> None:
        op = ex.operation
        assert op is not None  # the route stage ran
        mode = self.mode_for(op)
        if mode == "off":
            ex.body_limit = self.max_body_bytes
            ex.body_expected = self._has_body(ex)
            return
        violations = self.check_parameters(ex, op)
        invalid = ValidationFailed(detail="Invalid parameters.", violations=violations)
        if violations and self.reject(ex, invalid, mode):
            return
        self.check_body_head(ex, op, mode)

    def check_parameters(self, ex: Exchange, op: Operation) -> list[Violation]:
        violations: list[Violation] = []
        groups: dict[str, dict[str, Any]] = {}
        by_name: dict[str, list[str]] = {}
        for name, value in ex.query_pairs:
            by_name.setdefault(name, []).append(value)
        cookies: dict[str, str] | None = None
        for spec in op.params:
            group = groups.setdefault(spec.location, {})
            if spec.location == "path":
                group[spec.key] = spec.from_string(ex.path_params.get(spec.name, ""))
            elif spec.location == "query":
                value = self._query_value(spec, by_name, violations)
                if value is not _MISSING:
                    group[spec.key] = value
            elif spec.location == "header":
                raw = ex.request.header_values(spec.key.encode("latin-1"))
                if raw:
                    group[spec.key] = spec.from_string(", ".join(v.decode("latin-1") for v in raw))
            else:
                if cookies is None:
                    cookies = parse_cookies(ex.request.header_values(b"cookie"))
                if spec.name in cookies:
                    group[spec.key] = spec.from_string(cookies[spec.name])
        if self.reject_unknown_query:
            for name in by_name:
                if name in op.known_query:
                    continue
                base = name.split("[", 1)[0]
                if base != name and base in op.deep_objects:
                    continue
                violations.append(Violation("/" + name, "is not a documented parameter", "query"))
        if op.params_validator is not None:
            violations += op.params_validator.violations(groups, split_location=True)
        ex.params = groups
        return violations

    def _query_value(
        self, spec: ParamSpec, by_name: dict[str, list[str]], violations: list[Violation]
    ) -> Any:
        if spec.style == "deepObject":
            prefix = spec.name + "["
            obj: dict[str, Any] = {}
            for name, values in by_name.items():
                if name.startswith(prefix) and name.endswith("]"):
                    prop = name[len(prefix) : -1]
                    if len(values) > 1 or "[" in prop:
                        violations.append(Violation(f"/{spec.name}/{prop}", "must appear once", "query"))
                        continue
                    obj[prop] = coerce(values[0], spec.property_types.get(prop, frozenset({"string"})))
            return obj if obj else _MISSING
        if spec.kind == "object" and spec.style == "form" and spec.explode:
            obj = {}
            for prop, types in spec.property_types.items():
                if prop in by_name:
                    obj[prop] = coerce(by_name[prop][-1], types)
            return obj if obj else _MISSING
        if spec.name not in by_name:
            return _MISSING
        values = by_name[spec.name]
        if spec.kind == "array" and spec.style == "form" and spec.explode:
            return spec.from_values(values)
        if len(values) > 1:
            violations.append(Violation("/" + spec.name, "must not be repeated", "query"))
            return _MISSING
        if values[0] == "" and not spec.allow_empty_value and spec.kind == "primitive":
            violations.append(Violation("/" + spec.name, "must not be empty", "query"))
            return _MISSING
        return spec.from_string(values[0])

    @staticmethod
    def _has_body(ex: Exchange) -> bool:
        if ex.content_length is not None:
            return ex.content_length > 0
        return ex.request.header(b"transfer-encoding") is not None

    def check_body_head(self, ex: Exchange, op: Operation, mode: Mode) -> None:
        has_body = self._has_body(ex)
        ex.body_expected = has_body
        ex.body_limit = self.max_body_bytes
        if op.body is None:
            if has_body:
                self.reject(ex, ValidationFailed(detail="This operation takes no request body."), mode)
            return
        if not has_body:
            if op.body.required:
                problem = ValidationFailed(
                    detail="A request body is required.", violations=[Violation("", "is required")]
                )
                self.reject(ex, problem, mode)
            return
        if ex.content_length is not None and ex.content_length > self.max_body_bytes:
            self.reject(ex, PayloadTooLarge(detail=f"The body exceeds {self.max_body_bytes} bytes."))
            return
        parsed = media_type_of(ex.request.header(b"content-type"))
        media = op.body.match(parsed[0]) if parsed else None
        if media is None or parsed is None:
            declared = ", ".join(sorted(op.body.media))
            self.reject(ex, UnsupportedMediaType(detail=f"Send one of: {declared}."), mode)
            return
        charset = parsed[1].get("charset")
        if media.kind in ("json", "form") and charset not in (None, "utf-8"):
            self.reject(ex, UnsupportedMediaType(detail="Only the UTF-8 charset is accepted."), mode)
            return
        ex.media = media

    # -- body ----------------------------------------------------------------------------------
    def on_request_body(self, ex: Exchange, body: bytes) -> None:
        op = ex.operation
        assert op is not None
        mode = self.mode_for(op)
        ex.forward_body = body
        media = ex.media
        if mode == "off" or media is None or not body:
            if ex.body_expected and not body and op.body is not None and op.body.required and mode != "off":
                problem = ValidationFailed(
                    detail="A request body is required.", violations=[Violation("", "is required")]
                )
                self.reject(ex, problem, mode)
            return
        try:
            value = self._decode(media, body)
        except JSONRejected as exc:
            self.reject(
                ex,
                ValidationFailed(
                    detail="The body is not acceptable JSON.", violations=[Violation("", exc.reason)]
                ),
                mode,
            )
            return
        except Problem as problem:
            self.reject(ex, problem, mode)
            return
        if media.kind != "opaque":
            ex.body_value = value
            ex.has_body_value = True
        if media.validator is not None:
            violations = media.validator.violations(value)
            if violations and self.reject(
                ex, ValidationFailed(detail="Invalid request body.", violations=violations), mode
            ):
                return
        if media.kind == "json":
            try:
                ex.forward_body = dumps(value)
            except JSONRejected as exc:
                self.reject(
                    ex,
                    ValidationFailed(
                        detail="The body is not acceptable JSON.", violations=[Violation("", exc.reason)]
                    ),
                    mode,
                )
        elif media.kind == "form" and isinstance(value, dict):
            ex.forward_body = encode_query([(k, str(v)) for k, v in _form_pairs(value)]).encode()

    def _decode(self, media: MediaSpec, body: bytes) -> Any:
        if media.kind == "json":
            return parse(body, self.max_json_depth)
        if media.kind == "form":
            pairs = parse_query(body)
            out: dict[str, Any] = {}
            for name, value in pairs:
                if name in out:
                    raise ValidationFailed(
                        detail="Invalid request body.",
                        violations=[Violation("/" + name, "must not be repeated")],
                    )
                out[name] = coerce(value, media.property_types.get(name, frozenset({"string"})))
            return out
        return body

    def body_too_large(self, ex: Exchange) -> None:
        self.reject(ex, PayloadTooLarge(detail=f"The body exceeds {self.max_body_bytes} bytes."))


def _form_pairs(value: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for k, v in value.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        out.append((k, v))
    return out


class _Missing:
    pass


_MISSING: Any = _Missing()

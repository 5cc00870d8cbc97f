"""Compact JWS parsing and JOSE header rules (RFC 7515 §3.1, §4, §5.2, §7.1).

A compact JWS is ``BASE64URL(header) '.' BASE64URL(payload) '.'
BASE64URL(signature)`` (§7.1). :func:`parse_compact_jws` takes it apart and
applies the header policy before any key is looked at; it does not verify
anything (that is :func:`apishield.jose.rfc8725.verify_signature`).

Structure (§5.2 steps 1-3, §2):

* the length limit is checked before any decoding (RFC 8725 §3; a 1 MB
  header costs nothing to refuse);
* exactly three segments: five is a JWE (RFC 7516 §7.1), refused; the JSON
  serializations (§7.2), detached payloads used with them, and several
  signatures are not compact and are refused;
* each segment is strict base64url (:mod:`apishield.jose.b64`); the header
  and the signature may not be empty; the payload may (§7.1 allows it);
* the header is a JSON object in UTF-8 without duplicate member names
  (§4, §5.2 step 3; RFC 8725 §3.7).

Header policy (RFC 8725 §3.1, §3.10; RFC 7515 §4.1):

* ``alg`` is a non-empty string and not ``none`` in any letter case
  (RFC 7518 §3.6); whether it is acceptable is decided by the key;
* ``kid`` is a non-empty string of bounded length, ``typ`` a string;
* the key-bearing and processing parameters ``jku``, ``jwk``, ``x5u``,
  ``x5c``, ``x5t``, ``x5t#S256`` (a key named by the token is never
  trusted), ``cty`` (nested JWTs, RFC 8725 §3.3), ``b64`` (RFC 7797),
  ``zip``, ``enc``, ``epk``, ``p2c``, ``p2s`` (JWE only) are refused unless
  the caller lists them in ``allowed_header_params`` (a DPoP proof parser
  allows ``jwk``); ``b64`` other than ``true`` is never supported;
* other parameters are ignored, as §4 requires, unless listed in ``crit``
  (§4.1.11): ``crit`` is a non-empty array of distinct strings, names no
  parameter defined by JWS or JWA, and every name in it is present in the
  header and understood by the caller (``understood_crit``); anything else
  makes the JWS invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apishield.jose.b64 import b64url_decode_bytes
from apishield.jose.errors import JOSEError
from apishield.jose.jsonobj import parse_json_object

__all__ = [
    "DEFAULT_HEADER_PARAMS",
    "MAX_KID_LENGTH",
    "REFUSED_HEADER_PARAMS",
    "REGISTERED_HEADER_PARAMS",
    "CompactJWS",
    "media_type",
    "parse_compact_jws",
]

MAX_KID_LENGTH = 256
HEADER_MAX_DEPTH = 8

DEFAULT_HEADER_PARAMS = frozenset({"alg", "kid", "typ", "crit"})
REFUSED_HEADER_PARAMS = frozenset(
    {"jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "cty", "zip", "b64", "enc", "p2c", "p2s", "epk"}
)
# names defined by JWS (RFC 7515 §4.1), JWE (RFC 7516 §4.1) and JWA (RFC 7518 §4.6-4.8)
REGISTERED_HEADER_PARAMS = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"}
    | {"enc", "zip"}
    | {"epk", "apu", "apv", "iv", "tag", "p2s", "p2c"}
)


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """A parsed, not yet verified, compact JWS.

    ``signing_input`` is the ASCII ``header '.' payload`` as received (§5.2
    step 8); ``payload`` and ``signature`` are decoded bytes.
    """

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        alg: str = self.header["alg"]
        return alg

    @property
    def kid(self) -> str | None:
        kid: str | None = self.header.get("kid")
        return kid

    @property
    def typ(self) -> str | None:
        typ: str | None = self.header.get("typ")
        return typ


def media_type(typ: str) -> str:
    """``typ`` as a lower-case media type: ``application/`` is implied without '/' (§4.1.9)."""
    value = typ.lower()
    return value if "/" in value else "application/" + value


def _segment(data: bytes, name: str) -> bytes:
    try:
        return b64url_decode_bytes(data)
    except JOSEError as exc:
        raise JOSEError(f"{name}: {exc.reason}") from None


def _check_crit(header: dict[str, Any], understood_crit: frozenset[str]) -> None:
    crit = header["crit"]
    if not isinstance(crit, list) or not crit:
        raise JOSEError("crit must be a non-empty array")
    if not all(isinstance(name, str) for name in crit) or len(set(crit)) != len(crit):
        raise JOSEError("crit must list distinct header parameter names")
    if any(name in REGISTERED_HEADER_PARAMS for name in crit):
        raise JOSEError("crit lists a header parameter defined by JWS or JWA")
    if any(name not in header for name in crit):
        raise JOSEError("crit lists a header parameter that is absent")
    if any(name not in understood_crit for name in crit):
        raise JOSEError("crit lists an extension that is not understood")


def _check_header(
    header: dict[str, Any], allowed_header_params: frozenset[str], understood_crit: frozenset[str]
) -> None:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise JOSEError("alg is missing or not a string")
    if alg.lower() == "none":
        raise JOSEError("unsecured JWS (alg none) is not accepted")
    present = REFUSED_HEADER_PARAMS.intersection(header)
    if present:
        refused = present - allowed_header_params
        if refused:
            raise JOSEError(f"header parameter {sorted(refused)[0]!r} is not accepted")
        if "b64" in present and header["b64"] is not True:
            raise JOSEError("unencoded payloads (b64) are not supported")
    if "kid" in header:
        kid = header["kid"]
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise JOSEError(f"kid must be a non-empty string of at most {MAX_KID_LENGTH} characters")
    if "typ" in header and not isinstance(header["typ"], str):
        raise JOSEError("typ must be a string")
    if "crit" in header:
        _check_crit(header, understood_crit)


def parse_compact_jws(
    token: str,
    *,
    max_length: int = 8192,
    allowed_header_params: frozenset[str] = DEFAULT_HEADER_PARAMS,
    understood_crit: frozenset[str] = frozenset(),
) -> CompactJWS:
    """Parse a compact JWS and apply the header rules; raises :class:`JOSEError`."""
    if not isinstance(token, str):
        raise JOSEError("the token must be a string")
    if len(token) > max_length:
        raise JOSEError("the token is too long")
    if not token:
        raise JOSEError("the token is empty")
    if token[0] == "{":
        raise JOSEError("JWS JSON serialization is not accepted")
    if not token.isascii():
        raise JOSEError("the token contains non-ASCII characters")
    raw = token.encode("ascii")
    parts = raw.split(b".")
    if len(parts) != 3:
        if len(parts) == 5:
            raise JOSEError("JWE is not accepted")
        raise JOSEError("a compact JWS has exactly three segments")
    header_b64, payload_b64, signature_b64 = parts
    if not header_b64:
        raise JOSEError("the JOSE header is missing")
    if not signature_b64:
        raise JOSEError("the signature is missing")
    header = parse_json_object(
        _segment(header_b64, "JOSE header"), max_depth=HEADER_MAX_DEPTH, what="JOSE header"
    )
    _check_header(header, allowed_header_params, understood_crit)
    return CompactJWS(
        header,
        _segment(payload_b64, "payload"),
        raw[: len(header_b64) + 1 + len(payload_b64)],
        _segment(signature_b64, "signature"),
    )

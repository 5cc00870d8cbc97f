"""The upstream's base URL: an ``http``/``https`` origin with an optional path prefix.

RFC 3986 §3 and RFC 9110 §4.2: the scheme fixes TLS and the default port;
user information, queries and fragments have no meaning for an upstream and
are refused, as are non-ASCII hosts (IDNA is the operator's job) and paths
that are not already percent-encoded. The authority is written the way a
``Host`` header carries it (RFC 9110 §7.2): default ports left out, IPv6
literals in brackets.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["parse_base_url"]

_URL_FORBIDDEN_RE: Final = re.compile(r"[\x00-\x20\x7f]")
_REG_NAME_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
_PATH_RE: Final = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]*)*")


def parse_base_url(base_url: str) -> tuple[bool, str, int, str, bytes]:
    """Return (tls, host, port, authority, path prefix) of an ``http``/``https`` base URL."""
    if _URL_FORBIDDEN_RE.search(base_url) is not None:
        raise ValueError(f"base_url must not contain whitespace or control characters: {base_url!r}")
    try:
        parts = urlsplit(base_url)
    except ValueError as exc:  # e.g. a malformed IPv6 literal
        raise ValueError(f"base_url is not a valid URL: {base_url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
    if "@" in parts.netloc:
        raise ValueError(f"base_url must not contain user information: {base_url!r}")
    if "?" in base_url or "#" in base_url:
        raise ValueError(f"base_url must not contain a query or a fragment: {base_url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"base_url has no host: {base_url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"base_url has an invalid port: {base_url!r}") from exc
    tls = scheme == "https"
    default_port = 443 if tls else 80
    if port is None:
        port = default_port
    elif port == 0:
        raise ValueError(f"base_url port must be in 1-65535: {base_url!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError(f"base_url has an invalid IPv6 address: {base_url!r}") from exc
        authority = f"[{host}]"
    elif _REG_NAME_RE.fullmatch(host) is not None:
        authority = host
    else:
        raise ValueError(f"base_url host must be an ASCII host name or IP address: {base_url!r}")
    if port != default_port:
        authority = f"{authority}:{port}"
    path = parts.path.rstrip("/")
    if _PATH_RE.fullmatch(path) is None:
        raise ValueError(f"base_url path must be ASCII, percent-encoded: {base_url!r}")
    return tls, host, port, authority, path.encode("ascii")

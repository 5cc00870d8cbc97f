"""JWK thumbprints (RFC 7638).

The thumbprint names a key by its value, not by its ``kid``: it is what an
audit event records as "the key that verified this token", and what
certificate- or DPoP-bound tokens compare (RFC 9449 §6.1 ``jkt``). Per §3.2
only the required members of the key type take part (``e``, ``kty``, ``n``
for RSA; ``crv``, ``kty``, ``x``, ``y`` for EC; ``crv``, ``kty``, ``x`` for
OKP, RFC 8037 §2; ``k``, ``kty`` for oct), in lexicographic order, without
whitespace (§3.3), hashed with SHA-256 and encoded in base64url.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from apishield.jose.b64 import b64url_encode

__all__ = ["REQUIRED_MEMBERS", "jwk_thumbprint"]

REQUIRED_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}


def jwk_thumbprint(members: Mapping[str, str]) -> str:
    """SHA-256 thumbprint of a JWK given its required members in canonical form.

    The caller passes values already in their JWA form (RFC 7518 §6: no
    leading zero octets in RSA integers, full-length EC coordinates); members
    beyond the required ones are ignored.
    """
    kty = members["kty"]
    canonical = {name: members[name] for name in REQUIRED_MEMBERS[kty]}
    data = json.dumps(canonical, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return b64url_encode(hashlib.sha256(data.encode("utf-8")).digest())

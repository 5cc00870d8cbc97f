"""Cost of apishield's access-token verification against a bare ``cryptography`` floor.

For RS256 (2048-bit), ES256 and EdDSA (Ed25519) it times, uncached:

* ``apishield``: ``parse_compact_jws`` + ``verify_access_token`` (every check);
* ``floor``: the least a verifier can do: split, base64url-decode, ``json.loads``
  the header and claims, one ``cryptography`` verify, and the exp/iss/aud checks.

Rounds interleave the two (and alternate which goes first) so drift in machine
load hits both alike; the table shows the median µs per verification, the
ratio of the medians, and the median of the ratios within each round (the
two paths of a round ran back to back, so this one is the least noisy).

Run: ``python bench/jwt_verify_bench.py [--rounds N] [--number N]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey

from apishield.auth.rfc9068 import AccessTokenPolicy, verify_access_token
from apishield.jose import KeySet, import_jwk, parse_compact_jws

ISSUER = "https://issuer.example.com/"
AUDIENCE = "https://api.example.com"
NOW = 1_700_000_100.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _claims() -> bytes:
    return json.dumps(
        {
            "iss": ISSUER,
            "sub": "user-1234567890",
            "aud": AUDIENCE,
            "client_id": "client-abc",
            "iat": 1_700_000_000,
            "exp": 1_700_003_600,
            "jti": "9f1c2b7e-5d4a-4e0f-8a63-2b1d9c7e4f10",
            "scope": "orders:read orders:write profile",
        },
        separators=(",", ":"),
    ).encode()


class Case:
    def __init__(self, alg: str, private: Any, jwk_public: dict[str, Any]) -> None:
        self.alg = alg
        self.private = private
        self.public = private.public_key()
        header = json.dumps({"alg": alg, "typ": "at+jwt", "kid": "k1"}, separators=(",", ":")).encode()
        signing_input = f"{_b64(header)}.{_b64(_claims())}".encode()
        self.token = f"{signing_input.decode()}.{_b64(self._sign(signing_input))}"
        key = import_jwk({**jwk_public, "kid": "k1", "alg": alg}, allowed_algs=frozenset({alg}))
        self.keys = KeySet.of([key])
        self.policy = AccessTokenPolicy(issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset({alg}))

    def _sign(self, data: bytes) -> bytes:
        if self.alg == "RS256":
            signature: bytes = self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
            return signature
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        signature = self.private.sign(data)
        return signature

    def apishield(self) -> None:
        verify_access_token(parse_compact_jws(self.token), self.policy, self.keys, NOW)

    def floor(self) -> None:
        header_b64, payload_b64, signature_b64 = self.token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
        signature = _unb64(signature_b64)
        signing_input = f"{header_b64}.{payload_b64}".encode()
        if header["alg"] != self.alg:
            raise ValueError("alg")
        try:
            if self.alg == "RS256":
                self.public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            elif self.alg == "ES256":
                r = int.from_bytes(signature[:32], "big")
                s = int.from_bytes(signature[32:], "big")
                self.public.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
            else:
                self.public.verify(signature, signing_input)
        except InvalidSignature:
            raise ValueError("signature") from None
        if not (claims["exp"] > NOW and claims["iss"] == ISSUER and claims["aud"] == AUDIENCE):
            raise ValueError("claims")


def _cases() -> list[Case]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    return [
        Case("RS256", rsa_key, RSAKey.import_key(rsa_key.public_key()).as_dict()),
        Case("ES256", ec_key, ECKey.import_key(ec_key.public_key()).as_dict()),
        Case("EdDSA", ed_key, OKPKey.import_key(ed_key.public_key()).as_dict()),
    ]


def _per_op(fn: Callable[[], None], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=400)
    args = parser.parse_args()
    cases = _cases()
    for case in cases:  # warm up, and prove both paths accept the token
        case.apishield()
        case.floor()
    samples: dict[tuple[str, str], list[float]] = {
        (c.alg, k): [] for c in cases for k in ("floor", "apishield")
    }
    for round_ in range(args.rounds):
        for case in cases:
            order = (("floor", case.floor), ("apishield", case.apishield))
            for kind, fn in order if round_ % 2 == 0 else reversed(order):
                samples[(case.alg, kind)].append(_per_op(fn, args.number))
    print(f"{'alg':<8}{'floor µs/op':>14}{'apishield µs/op':>18}{'ratio':>9}{'per-round ratio':>18}")
    for case in cases:
        floors, ours = samples[(case.alg, "floor")], samples[(case.alg, "apishield")]
        floor, mine = statistics.median(floors), statistics.median(ours)
        paired = statistics.median(o / f for o, f in zip(ours, floors, strict=True))
        print(f"{case.alg:<8}{floor:>14.1f}{mine:>18.1f}{mine / floor:>9.2f}{paired:>18.2f}")


if __name__ == "__main__":
    main()

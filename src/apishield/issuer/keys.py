"""The issuer's signing keys: generation, owner-only storage, rotation, JWKS (RFC 7517, RFC 7518).

Layout of ``keys_dir`` (mode 0700, every file 0600, owned by the user that
runs the issuer; anything looser is refused at start, as ssh does):

* ``<kid>.pem``: one PKCS #8 private key per signing key;
* ``manifest.json``: which keys exist, which one signs, and until when a
  retired key stays published;
* ``csrf.key``: 32 random bytes that key the sign-in form's CSRF tokens.

The ``kid`` of a key is its RFC 7638 thumbprint. Each key is bound to exactly
one algorithm (RFC 8725 §3.1). Keys are generated at first start.
:meth:`KeyRing.rotate` adds a key, signs with it from then on, and keeps the
previous key in the JWKS (RFC 7517 §5) until every token it signed has expired
(``retire_at``), after which it is deleted. A running issuer notices a
rotation made by another process (``apishield issuer rotate-keys``) within a
second.

ECDSA signatures are the fixed-length ``R || S`` of RFC 7518 §3.4, PS256 uses a
salt as long as the hash (§3.5), RSA keys have 3072 bits (§3.3 asks for at
least 2048).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from apishield.jose.b64 import b64url_encode
from apishield.jose.rfc7638 import jwk_thumbprint

__all__ = ["KeyFileError", "KeyRing", "SigningKey"]

MANIFEST = "manifest.json"
CSRF_KEY = "csrf.key"
RSA_BITS = 3072

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

_EC = {
    "ES256": (ec.SECP256R1, hashes.SHA256, "P-256", 32),
    "ES384": (ec.SECP384R1, hashes.SHA384, "P-384", 48),
}


class KeyFileError(Exception):
    """The key folder or a key file is missing, unreadable, corrupt or readable by others."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _generate(alg: str) -> PrivateKey:
    if alg in _EC:
        return ec.generate_private_key(_EC[alg][0]())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"cannot sign with {alg}")


def _uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big"))


def _public_members(alg: str, key: PrivateKey) -> dict[str, str]:
    """The required public JWK members of ``key`` (RFC 7518 §6, RFC 8037 §2)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _, _, crv, size = _EC[alg]
        numbers = key.public_key().public_numbers()
        return {"kty": "EC", "crv": crv, "x": _uint(numbers.x, size), "y": _uint(numbers.y, size)}
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    rsa_numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "n": _uint(rsa_numbers.n), "e": _uint(rsa_numbers.e)}


@dataclass(frozen=True)
class SigningKey:
    """One private key bound to one JWS algorithm."""

    kid: str
    alg: str
    private: PrivateKey
    created_at: float
    retire_at: float | None = None

    @classmethod
    def create(cls, alg: str, now: float) -> SigningKey:
        private = _generate(alg)
        return cls(jwk_thumbprint(_public_members(alg, private)), alg, private, now)

    def public_jwk(self) -> dict[str, str]:
        return {**_public_members(self.alg, self.private), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input`` (RFC 7515 §5.1 step 5)."""
        key = self.private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            _, digest, _, size = _EC[self.alg]
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest())))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(signing_input)
        if self.alg == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(signing_input, pss, hashes.SHA256())
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _check_private(path: Path, *, folder: bool = False) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise KeyFileError(path, "missing") from None
    if stat.S_ISLNK(info.st_mode):
        raise KeyFileError(path, "is a symbolic link; key files must be regular files")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise KeyFileError(path, "is owned by another user")
    if info.st_mode & 0o077:
        mode = "0700" if folder else "0600"
        raise KeyFileError(
            path, f"is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}); chmod {mode} it"
        )


class KeyRing:
    """The signing keys in ``keys_dir``: the active one signs, all unexpired ones are published."""

    def __init__(self, folder: Path, alg: str, *, keep_for: float, clock: Any = time.time) -> None:
        self.folder = folder
        self.alg = alg
        self.keep_for = keep_for
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._active: SigningKey | None = None
        self._stamp: int = -1
        self._checked = 0.0
        self._ensure()
        self._load()
        self.csrf_key = self._read_csrf()

    # -- files -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _ensure(self) -> None:
        if not self.folder.exists():
            self.folder.mkdir(mode=0o700, parents=True)
            os.chmod(self.folder, 0o700)
        _check_private(self.folder, folder=True)
        with self._locked():
            if not (self.folder / CSRF_KEY).exists():
                _write_private(self.folder / CSRF_KEY, secrets.token_bytes(32))
            if not (self.folder / MANIFEST).exists():
                self._save([SigningKey.create(self.alg, self.clock())])

    def _save(self, keys: list[SigningKey]) -> None:
        entries = []
        for key in keys:
            path = self.folder / f"{key.kid}.pem"
            if not path.exists():
                _write_private(path, key.pem())
            entries.append(
                {"kid": key.kid, "alg": key.alg, "created_at": key.created_at, "retire_at": key.retire_at}
            )
        manifest = {"active": keys[-1].kid, "keys": entries}
        _write_private(self.folder / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))

    def _read_manifest(self) -> dict[str, Any]:
        path = self.folder / MANIFEST
        _check_private(path)
        try:
            manifest = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise KeyFileError(path, f"unreadable ({exc})") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("keys"), list):
            raise KeyFileError(path, "is not a key manifest")
        return manifest

    def _load_key(self, entry: dict[str, Any]) -> SigningKey:
        path = self.folder / f"{entry['kid']}.pem"
        _check_private(path)
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise KeyFileError(path, f"not a private key ({exc})") from None
        if not isinstance(
            private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        ):
            raise KeyFileError(path, "unsupported key type")
        key = SigningKey(entry["kid"], entry["alg"], private, entry["created_at"], entry.get("retire_at"))
        if jwk_thumbprint(_public_members(key.alg, private)) != key.kid:
            raise KeyFileError(path, "does not match its key id")
        return key

    def _load(self) -> None:
        manifest = self._read_manifest()
        try:
            keys = [self._load_key(entry) for entry in manifest["keys"]]
        except (KeyError, TypeError):
            raise KeyFileError(self.folder / MANIFEST, "is not a key manifest") from None
        active = next((k for k in keys if k.kid == manifest.get("active")), None)
        if active is None:
            raise KeyFileError(self.folder / MANIFEST, "names no active key")
        self._keys, self._active = keys, active
        self._stamp = (self.folder / MANIFEST).stat().st_mtime_ns

    def _read_csrf(self) -> bytes:
        path = self.folder / CSRF_KEY
        _check_private(path)
        data = path.read_bytes()
        if len(data) < 32:
            raise KeyFileError(path, "is shorter than 32 bytes")
        return data

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        with self._lock:
            self._checked = now
            try:
                stamp = (self.folder / MANIFEST).stat().st_mtime_ns
            except FileNotFoundError:
                return
            if stamp != self._stamp:
                self._load()

    # -- use ---------------------------------------------------------------------------------------

    @property
    def active(self) -> SigningKey:
        self._refresh()
        assert self._active is not None
        return self._active

    def published(self) -> list[SigningKey]:
        self._refresh()
        now = self.clock()
        return [k for k in self._keys if k.retire_at is None or k.retire_at > now]

    def jwks(self) -> dict[str, Any]:
        """The JWK Set of every key whose tokens may still be valid (public members only)."""
        return {"keys": [key.public_jwk() for key in self.published()]}

    def algorithms(self) -> frozenset[str]:
        return frozenset(key.alg for key in self.published())

    def rotate(self, alg: str | None = None) -> SigningKey:
        """Add a key and sign with it; the previous key stays published for ``keep_for`` seconds."""
        now = self.clock()
        with self._locked():
            self._load()
            new = SigningKey.create(alg or self.alg, now)
            keys: list[SigningKey] = []
            for key in self._keys:
                retire_at = key.retire_at if key.retire_at is not None else now + self.keep_for
                if retire_at > now:
                    keys.append(SigningKey(key.kid, key.alg, key.private, key.created_at, retire_at))
                else:
                    with contextlib.suppress(FileNotFoundError):
                        (self.folder / f"{key.kid}.pem").unlink()
            self._save([*keys, new])
            self._load()
        return new

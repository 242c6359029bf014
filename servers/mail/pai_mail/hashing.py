"""Password hashes Dovecot verifies: ``{SHA512-CRYPT}`` (default) and ``{BLF-CRYPT}``.

SHA512-CRYPT is the SHA-crypt scheme (``$6$``, 5000 rounds) as specified by Ulrich Drepper,
written here from the specification because the stdlib ``crypt`` module is deprecated and
gone in Python 3.13. BLF-CRYPT (bcrypt, ``$2b$``) needs the ``bcrypt`` package.
"""

from __future__ import annotations

import hashlib
import secrets
import string

from pai_core.errors import MissingDependency

__all__ = ["LOCK_PREFIX", "generate_password", "hash_password", "sha512_crypt"]

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SALT_CHARS = string.ascii_letters + string.digits + "./"
LOCK_PREFIX = "!"
"""Put in front of the hash to lock an account: no password ever matches it."""

# The byte order of the final digest in the encoded hash, three bytes per four characters.
_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
    (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
    (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38),
    (18, 39, 60), (40, 61, 19), (62, 20, 41),
)  # fmt: skip


def _b64(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha512_crypt(password: str, salt: str | None = None, rounds: int = 5000) -> str:
    """``$6$salt$hash`` for ``password`` (``rounds=`` is written only when not 5000)."""
    p = password.encode()
    s = salt if salt is not None else "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    s_bytes = s.encode()[:16]
    b = hashlib.sha512(p + s_bytes + p).digest()
    a = hashlib.sha512(p + s_bytes)
    n = len(p)
    while n > 64:
        a.update(b)
        n -= 64
    a.update(b[:n])
    n = len(p)
    while n:
        a.update(b if n & 1 else p)
        n >>= 1
    c = a.digest()
    p_seq = _repeat(hashlib.sha512(p * len(p)).digest(), len(p))
    s_seq = _repeat(hashlib.sha512(s_bytes * (16 + c[0])).digest(), len(s_bytes))
    for i in range(rounds):
        h = hashlib.sha512(p_seq if i & 1 else c)
        if i % 3:
            h.update(s_seq)
        if i % 7:
            h.update(p_seq)
        h.update(c if i & 1 else p_seq)
        c = h.digest()
    encoded = "".join(_b64(c[x], c[y], c[z], 4) for x, y, z in _ORDER) + _b64(0, 0, c[63], 2)
    prefix = "$6$" if rounds == 5000 else f"$6$rounds={rounds}$"
    return f"{prefix}{s_bytes.decode()}${encoded}"


def hash_password(password: str, scheme: str) -> str:
    """The passwd-file password field: ``{SCHEME}hash``."""
    if scheme == "SHA512-CRYPT":
        return "{SHA512-CRYPT}" + sha512_crypt(password)
    if scheme == "BLF-CRYPT":
        try:
            import bcrypt
        except ModuleNotFoundError as exc:
            raise MissingDependency(
                "the BLF-CRYPT scheme needs the bcrypt package",
                extra="bcrypt",
                package="pai-mail",
            ) from exc
        hashed: bytes = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10))
        return "{BLF-CRYPT}" + hashed.decode()
    raise ValueError(f"unknown scheme {scheme}")


def generate_password(length: int = 24) -> str:
    """A strong random password (letters and digits: safe in every client and form)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in pw)
            and any(c.isupper() for c in pw)
            and any(c.isdigit() for c in pw)
        ):
            return pw

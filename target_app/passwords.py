"""Password hashes: Argon2id through pwdlib (the hashing FastAPI's own template uses).

The seeded users all have the password SEED_PASSWORD, so that the load can log
in as any of them; its hash is computed once per process (Argon2 is slow on
purpose: about 0.2 s on these machines) and shared by every seeded row.
"""

from __future__ import annotations

from functools import cache

from pwdlib import PasswordHash

__all__ = ["SEED_PASSWORD", "hash_password", "seed_hash", "verify_password"]

SEED_PASSWORD = "shop-password"

_HASHER = PasswordHash.recommended()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


@cache
def seed_hash() -> str:
    return hash_password(SEED_PASSWORD)


@cache
def _dummy_hash() -> str:
    return hash_password("no user has this password")


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored`. An unknown user (None) is verified against a
    dummy hash: the answer takes as long, so timing does not tell which e-mails exist."""
    if stored is None:
        _HASHER.verify(password, _dummy_hash())
        return False
    return _HASHER.verify(password, stored)

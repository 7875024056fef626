"""Dashboard sign-ins: opaque session ids in a cookie, their meaning kept in Redis with a TTL.

Signing in with a key (the page's form) makes a random session id; the browser holds only that id
in an HttpOnly, ``SameSite=Strict`` cookie. Redis holds, under the SHA-256 of the id (a copy of
Redis gives no usable cookies), the tenant's name, the role and the SHA-256 of the key that signed
in, for ``Settings.session_ttl`` seconds; never the key. A session ends at sign-out, at its TTL,
or once its key is removed from the tenants file or its tenant is gone (the tenants file is read
when the API starts: after a restart).

    blurq:session:<sha256 of the id>   JSON {"tenant", "role", "key_sha256"}, TTL session_ttl
"""

from __future__ import annotations

import hashlib
import json
import secrets

import redis

from infra.errors import StatusUnavailable
from infra.tenants import Principal, Role, Tenants, key_hash

COOKIE = "blurq_session"
"""Name of the cookie that carries the session id."""
SESSION_KEY = "blurq:session:"
"""Redis key prefix of a session record."""


class Sessions:
    """Opens, resolves and ends dashboard sessions in Redis."""

    def __init__(self, client: redis.Redis, ttl: int) -> None:
        self.redis = client
        self.ttl = ttl

    def open(self, principal: Principal, key: str) -> str:
        """A new session for the principal that key authenticated; returns the cookie's id."""
        session = secrets.token_urlsafe(32)
        record = {
            "tenant": principal.tenant.name,
            "role": principal.role.value,
            "key_sha256": key_hash(key),
        }
        try:
            self.redis.set(_key(session), json.dumps(record), ex=self.ttl)
        except redis.RedisError as error:
            raise StatusUnavailable(f"Redis unavailable: {error}") from error
        return session

    def principal(self, session: str, tenants: Tenants) -> Principal | None:
        """Who a session id signs in, or None (unknown, expired, or its key revoked)."""
        if not session:
            return None
        try:
            raw = self.redis.get(_key(session))
        except redis.RedisError as error:
            raise StatusUnavailable(f"Redis unavailable: {error}") from error
        if not isinstance(raw, str):
            return None
        record = json.loads(raw)
        tenant = tenants.get(record["tenant"])
        role = None if tenant is None else tenant.keys.get(record["key_sha256"])
        if tenant is None or role is None or role.value != record["role"]:
            return None
        return Principal(tenant, Role(role))

    def close(self, session: str) -> None:
        """End a session (sign-out); unknown ids are ignored."""
        if session:
            try:
                self.redis.delete(_key(session))
            except redis.RedisError as error:
                raise StatusUnavailable(f"Redis unavailable: {error}") from error


def _key(session: str) -> str:
    return SESSION_KEY + hashlib.sha256(session.encode()).hexdigest()

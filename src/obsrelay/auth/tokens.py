"""Checking user tokens: RS256/ES256 JWTs against a key set, with issuer and audience.

Both `oidc` mode (keys from the provider's JWKS URL) and `local` mode (obsrelay's own
key, see auth/local.py) go through `TokenVerifier.verify`, so there is one path to
get right. Only asymmetric algorithms are accepted: `alg: none` and HS256 (with the
public key as the secret) are refused before any key is looked at.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from obsrelay.domain.errors import Unauthorized, Unavailable
from obsrelay.domain.jobs import Identity
from obsrelay.domain.values import quote

log = logging.getLogger("obsrelay.auth")

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 30
# An unknown key id makes us fetch the key set again, but not more often than this.
_MIN_REFRESH_SECONDS = 30.0
_JWKS_TIMEOUT = 5.0


class KeySource:
    """Where signing keys come from."""

    async def key(self, kid: str | None) -> PyJWK:
        raise NotImplementedError


class StaticKeys(KeySource):
    """A fixed key set (local mode)."""

    def __init__(self, keys: PyJWKSet) -> None:
        self._keys = keys

    async def key(self, kid: str | None) -> PyJWK:
        return _pick(self._keys, kid)


class JwksKeys(KeySource):
    """The provider's JWKS, cached; fetched again for an unknown key id (key rotation).

    Concurrent requests that need a fetch share one, and an unknown key id triggers at
    most one fetch per `min_refresh_seconds`, so forged key ids cannot cause a storm.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient | None = None,
        min_refresh_seconds: float = _MIN_REFRESH_SECONDS,
    ) -> None:
        self._url = url
        self._min_refresh = min_refresh_seconds
        self._client = client or httpx.AsyncClient(timeout=_JWKS_TIMEOUT)
        self._keys: PyJWKSet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> PyJWK:
        if self._keys is not None:
            try:
                return _pick(self._keys, kid)
            except Unauthorized:
                if time.monotonic() - self._fetched_at < self._min_refresh:
                    raise
        await self._refresh()
        assert self._keys is not None
        return _pick(self._keys, kid)

    async def _refresh(self) -> None:
        fetched_before = self._fetched_at
        async with self._lock:
            if self._fetched_at != fetched_before and self._keys is not None:
                return  # another request fetched while we waited
            try:
                response = await self._client.get(self._url)
                response.raise_for_status()
                keys = PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as error:
                log.warning("cannot fetch the signing keys from %s: %s", self._url, error)
                if self._keys is None:
                    raise Unavailable(
                        "The server cannot check tokens right now (key set unavailable)."
                    ) from None
                return
            finally:
                self._fetched_at = time.monotonic()
            self._keys = keys

    async def close(self) -> None:
        await self._client.aclose()


def _pick(keys: PyJWKSet, kid: str | None) -> PyJWK:
    for key in keys.keys:
        if kid is None or key.key_id == kid:
            return key
    raise Unauthorized("The token is signed with a key this server does not know.")


class UserSource(Protocol):
    """Who a checked token's user is, when the token alone does not say (auth/userinfo.py)."""

    async def identity(self, token: str, claims: Mapping[str, Any]) -> Identity: ...


class TokenVerifier:
    """Turns a bearer token into an Identity, or raises Unauthorized.

    The user is read from the token's claims, or, with `users`, from that source once
    the token has passed every check here.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        roles_claim: str = "roles",
        users: UserSource | None = None,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._roles_claim = roles_claim
        self._users = users

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is not a well-formed JWT.") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthorized(f"Tokens signed with {quote(algorithm)} are not accepted.")
        key = await self._keys.key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired; sign in again.") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The token is meant for another audience.") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(
                "The token was issued by an issuer this server does not trust."
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The token's signature is not valid.") from None
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise Unauthorized(f"The token is not valid: {quote(str(error), 80)}.") from None
        if self._users is not None:
            return await self._users.identity(token, claims)
        return identity_from_claims(claims, self._roles_claim)


def identity_from_claims(claims: Mapping[str, Any], roles_claim: str) -> Identity:
    """The user: id from `sub`, name from `name`/`nickname`/`email`, roles from the claim.

    The roles claim holds a list of roles, or an object with a `roles` list (as the
    hosted provider's `https://photonranch.org/user_metadata` does).
    """
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("The token names no user (no 'sub').")
    name = next(
        (claims[key] for key in ("name", "nickname", "email") if isinstance(claims.get(key), str)),
        subject,
    )
    value = claims.get(roles_claim)
    if isinstance(value, Mapping):
        value = value.get("roles")
    roles = (
        tuple(role for role in value if isinstance(role, str)) if isinstance(value, list) else ()
    )
    return Identity(user_id=subject, user_name=name, roles=roles)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; raises Unauthorized otherwise."""
    if not authorization:
        raise Unauthorized("This needs a user token: send 'Authorization: Bearer <token>'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    if token in ("undefined", "null"):
        raise Unauthorized("You are not signed in (the browser sent no token).")
    return token

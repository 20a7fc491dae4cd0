"""Who a token's user is, from the OpenID provider's userinfo endpoint (oidc mode).

The hosted jobs service read each user's name and roles from Auth0's `/userinfo`, so
the real front end's access tokens may carry no roles claim at all. With
`OBSRELAY_OIDC_USERINFO_URL` set, a token that passed `TokenVerifier`'s checks is
shown to that endpoint, and its answer names the user.

- One fetch per token, however many requests race: they wait on the same one.
- An answer is kept until its token expires, in a cache of at most `max_tokens` tokens
  (the least recently used goes first). The cache is keyed by the token's SHA-256, so
  the tokens themselves are not kept.
- A provider that is down, slow or answering nonsense is a 503, as for the JWKS;
  tokens already known keep working meanwhile. A token the provider refuses is a 401.

It touches the network (the provider) and its own cache, nothing else.
"""

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from obsrelay.auth.tokens import identity_from_claims
from obsrelay.domain.errors import Unauthorized, Unavailable
from obsrelay.domain.jobs import Identity

log = logging.getLogger("obsrelay.auth")

_TIMEOUT_SECONDS = 5.0
MAX_TOKENS = 10_000
_UNAVAILABLE = "The server cannot check tokens right now (the provider's userinfo {})."


@dataclass(frozen=True)
class _Known:
    identity: Identity
    expires: float  # the token's `exp`, in seconds since the epoch


class Userinfo:
    """The provider's userinfo endpoint, with a bounded cache and one fetch per token."""

    def __init__(
        self,
        url: str,
        roles_claim: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = _TIMEOUT_SECONDS,
        max_tokens: int = MAX_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._roles_claim = roles_claim
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._max_tokens = max_tokens
        self._clock = clock
        self._known: OrderedDict[bytes, _Known] = OrderedDict()
        self._fetching: dict[bytes, asyncio.Future[Identity]] = {}
        self.fetches = 0  # requests made to the provider

    async def identity(self, token: str, claims: Mapping[str, Any]) -> Identity:
        """The user of `token`, whose signature, issuer, audience and expiry were checked
        and gave `claims`."""
        key = hashlib.sha256(token.encode()).digest()
        known = self._known.get(key)
        if known is not None:
            if known.expires > self._clock():
                self._known.move_to_end(key)
                return known.identity
            del self._known[key]
        fetch = self._fetching.get(key)
        if fetch is None:
            fetch = asyncio.ensure_future(self._fetch(key, token, claims))
            self._fetching[key] = fetch
            fetch.add_done_callback(lambda _: self._fetching.pop(key, None))
        # Shielded: a request that gives up (its client hung up) leaves the fetch to the
        # others waiting on it.
        return await asyncio.shield(fetch)

    async def _fetch(self, key: bytes, token: str, claims: Mapping[str, Any]) -> Identity:
        self.fetches += 1
        try:
            response = await self._client.get(
                self._url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.TimeoutException:
            log.warning("the userinfo endpoint %s did not answer in time", self._url)
            raise Unavailable(_UNAVAILABLE.format("did not answer in time")) from None
        except httpx.HTTPError as error:
            # The error's text names the URL, never the token (it is in a header).
            log.warning("cannot reach the userinfo endpoint %s: %s", self._url, error)
            raise Unavailable(_UNAVAILABLE.format("cannot be reached")) from None
        if response.status_code in (401, 403):
            raise Unauthorized("The provider does not accept this token; sign in again.")
        if not response.is_success:
            log.warning("the userinfo endpoint %s answered %d", self._url, response.status_code)
            raise Unavailable(_UNAVAILABLE.format(f"answered {response.status_code}"))
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            log.warning("the userinfo endpoint %s answered something not a JSON object", self._url)
            raise Unavailable(_UNAVAILABLE.format("answered something not a JSON object"))
        if answer.get("sub", claims["sub"]) != claims["sub"]:
            # OpenID Connect Core 5.3.2: an answer about another user must not be used.
            log.warning("the userinfo endpoint %s named another user than the token", self._url)
            raise Unauthorized("The provider's userinfo names another user than the token.")
        # The answer names the user; the token's own claims fill in what it leaves out.
        named = {**claims, **answer, "sub": claims["sub"]}
        identity = identity_from_claims(named, self._roles_claim)
        self._keep(key, _Known(identity, float(claims["exp"])))
        return identity

    def _keep(self, key: bytes, known: _Known) -> None:
        self._known[key] = known
        self._known.move_to_end(key)
        while len(self._known) > self._max_tokens:
            self._known.popitem(last=False)

    async def close(self) -> None:
        await self._client.aclose()

"""The access policy, in one place: `Access.ensure(action, site, credentials)`.

Every request goes through `ensure` once, which authenticates, then authorizes, then
counts the request against the client's rate limit, in that order, so a refused
request costs the legitimate users nothing.

- READ a site (recent jobs, messages, the datastream) is public unless
  OBSRELAY_PUBLIC_READ=false; then it takes a user token or the site's own key.
- ACT_AS_SITE (claiming jobs, reporting status, posting messages and events) follows
  OBSRELAY_SITE_KEYS:
  - `auto` (the default): a site that has an active key must use it; a site without
    one is served without a key, so existing site software keeps working until its
    operator adds a key;
  - `required`: every call needs the site's key;
  - `off`: keys are not checked (as the hosted system was).
  A wrong key is 401, another site's key 403. A keyless call for a site that does not
  exist may register it, at most OBSRELAY_NEW_SITES_PER_CLIENT a day per client and
  OBSRELAY_MAX_SITES in all: `ensure` checks that and marks the actor, and
  `register_new_site` registers it once the call has succeeded (a refused call stores
  nothing).
- COMMAND a site (submit or cancel jobs) takes a user token and a registered site.
  Admins may command any site at any time; anybody else is refused while someone else
  holds a reservation there (when a calendar is configured). In `none` auth mode
  nobody is checked: for local experiments only.
"""

import math
from dataclasses import dataclass
from enum import StrEnum

from obsrelay.auth.calendar import Calendar, CalendarUnavailable
from obsrelay.auth.ratelimit import Client, Limits, NewSiteBudget
from obsrelay.auth.sitekeys import SiteKeys, key_id_of, looks_like_site_key
from obsrelay.auth.tokens import TokenVerifier, bearer_token
from obsrelay.domain.errors import Forbidden, RateLimited, Unauthorized, Unavailable
from obsrelay.domain.jobs import Identity
from obsrelay.services.sites import SiteRegistry

ANONYMOUS = Identity(user_id="anonymous", user_name="anonymous", roles=())


class Action(StrEnum):
    READ = "read"
    ACT_AS_SITE = "act as site"
    COMMAND = "command"


@dataclass(frozen=True)
class Credentials:
    """What a request presented: its Authorization header, X-Site-Key, and its address."""

    authorization: str | None = None
    site_key: str | None = None
    address: str = "-"

    def key(self) -> str | None:
        """A site key, from X-Site-Key or from `Authorization: Bearer ork_...`."""
        if self.site_key:
            return self.site_key.strip()
        if self.authorization:
            scheme, _, value = self.authorization.partition(" ")
            if scheme.lower() == "bearer" and looks_like_site_key(value.strip()):
                return value.strip()
        return None


@dataclass(frozen=True)
class Actor:
    """Who a request acts as, once the policy has let it in."""

    client: Client
    user: Identity = ANONYMOUS
    # A site call for a site that does not exist yet, allowed to register it.
    new_site: bool = False


class Access:
    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        site_keys: SiteKeys,
        sites: SiteRegistry,
        site_keys_mode: str,
        public_read: bool,
        calendar: Calendar | None,
        limits: Limits,
        new_sites: NewSiteBudget,
        max_sites: int,
    ) -> None:
        self.verifier = verifier
        self.site_keys = site_keys
        self.sites = sites
        self.site_keys_mode = site_keys_mode
        self.public_read = public_read
        self.calendar = calendar
        self.limits = limits
        self.new_sites = new_sites
        self.max_sites = max_sites

    @property
    def checks_users(self) -> bool:
        return self.verifier is not None

    async def ensure(
        self,
        action: Action,
        site: str,
        credentials: Credentials,
        *,
        count: str | None = None,
        fallback_user: Identity | None = None,
    ) -> Actor:
        """The actor, if `credentials` may do `action` at `site` now; raises otherwise.

        `count`: the kind of request to count against the actor's limit at `site`.
        `fallback_user`: the user a command names in `none` auth mode.
        """
        if action is Action.READ:
            actor = await self._reader(site, credentials)
        elif action is Action.ACT_AS_SITE:
            actor = await self._site_caller(site, credentials)
        else:
            actor = await self._commander(site, credentials, fallback_user)
        if count is not None:
            self.limits.take(count, actor.client, site)
        return actor

    async def user(self, credentials: Credentials) -> Identity:
        """The signed-in user; raises Unauthorized without a valid token."""
        if self.verifier is None:
            return ANONYMOUS
        return await self.verifier.verify(bearer_token(credentials.authorization))

    async def ensure_may_list_sites(self, credentials: Credentials) -> None:
        if self.public_read or self.verifier is None:
            return
        await self.user(credentials)

    async def reader_of_anything(self, credentials: Credentials) -> None:
        """Raises unless the request may read at least some site (valid token or key)."""
        if self.public_read:
            return
        key = credentials.key()
        if key is not None:
            if await self.site_keys.site_of(key) is None:
                raise Unauthorized("The site key is not valid (unknown or revoked).")
            return
        await self.user(credentials)

    async def _reader(self, site: str, credentials: Credentials) -> Actor:
        address = Client("address", credentials.address)
        if self.public_read:
            return Actor(address)
        key = credentials.key()
        if key is not None:
            return Actor(await self._key_holder(site, key))
        if self.verifier is None:
            return Actor(address)
        user = await self.user(credentials)
        return Actor(Client("user", user.user_id), user)

    async def _key_holder(self, site: str, key: str) -> Client:
        owner = await self.site_keys.site_of(key)
        if owner is None:
            raise Unauthorized("The site key is not valid (unknown or revoked).")
        if owner != site:
            raise Forbidden(f"This key belongs to site {owner}, not {site}.")
        return Client("key", key_id_of(key) or "-")

    async def _site_caller(self, site: str, credentials: Credentials) -> Actor:
        key = credentials.key()
        if key is not None and self.site_keys_mode != "off":
            return Actor(await self._key_holder(site, key))
        if self.site_keys_mode == "required":
            raise Unauthorized(f"Calls as site {site} need its key (X-Site-Key).")
        client = Client("address", credentials.address)
        registered, keyed = await self.sites.standing(site)
        if keyed and self.site_keys_mode == "auto":
            raise Unauthorized(
                f"Site {site} has a key: calls as {site} must carry it "
                "(X-Site-Key, or Authorization: Bearer <key>)."
            )
        if not registered:
            await self._may_register_by_call(site, client)
        return Actor(client, new_site=not registered)

    async def register_new_site(self, actor: Actor, site: str) -> None:
        """After a successful call by `actor`, registers its site if it was new."""
        if actor.new_site:
            await self.sites.register(site, f"call from {actor.client.id}")

    async def _may_register_by_call(self, site: str, client: Client) -> None:
        """Raises unless `client` may register `site` by calling as it (takes the budget)."""
        operator = f"the operator can add it with 'obsrelay sites add {site}'"
        if await self.sites.count() >= self.max_sites:
            raise Forbidden(
                f"Site {site} does not exist and this server has reached its limit of "
                f"{self.max_sites} sites; {operator}."
            )
        wait = self.new_sites.take(client)
        if wait > 0:
            raise RateLimited(
                f"Site {site} does not exist, and this client may not create more sites "
                f"now; {operator}.",
                retry_after=max(1, math.ceil(min(wait, 86400.0))),
            )

    async def _commander(
        self, site: str, credentials: Credentials, fallback_user: Identity | None
    ) -> Actor:
        if self.verifier is None:
            user = fallback_user or ANONYMOUS
            client = Client("address", credentials.address)
        else:
            user = await self.user(credentials)
            client = Client("user", user.user_id)
        await self.sites.ensure_exists(site)
        await self._ensure_not_reserved(user, site)
        return Actor(client, user)

    async def _ensure_not_reserved(self, user: Identity, site: str) -> None:
        if self.verifier is None or user.is_admin or self.calendar is None:
            return
        try:
            holders = await self.calendar.holders(site)
        except CalendarUnavailable as error:
            raise Unavailable(
                f"The reservation calendar cannot be reached ({error}); try again shortly."
            ) from None
        if holders and all(holder.creator_id != user.user_id for holder in holders):
            names = ", ".join(sorted({holder.creator for holder in holders}))
            raise Unauthorized(f"{names} holds a reservation at {site} right now.")

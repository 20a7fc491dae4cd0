"""The access policy, in one place: who may read, who may act as a site, who may command.

- Reading (recent jobs, messages, the datastream) is public unless
  OBSRELAY_PUBLIC_READ=false; then it takes a user token or the site's own key.
- Acting as a site (claiming jobs, reporting status, posting messages and events)
  follows OBSRELAY_SITE_KEYS: `off` (anyone, as the hosted system allowed),
  `optional` (no key passes, a wrong key is refused), `required`. A key of another
  site is 403.
- Commanding a site (submitting or cancelling jobs) takes a user token. Admins may
  command any site at any time; anybody else is refused while someone else holds a
  reservation there (when a calendar is configured). In `none` auth mode nobody is
  checked: for local experiments only.
- Per-site rate limits on jobs, messages and events answer 429 with Retry-After.
"""

import math
from dataclasses import dataclass

from obsrelay.auth.calendar import Calendar, CalendarUnavailable
from obsrelay.auth.ratelimit import RateLimiter
from obsrelay.auth.sitekeys import SiteKeys, looks_like_site_key
from obsrelay.auth.tokens import AuthError, TokenVerifier, bearer_token
from obsrelay.domain.jobs import Identity

ANONYMOUS = Identity(user_id="anonymous", user_name="anonymous", roles=())


@dataclass(frozen=True)
class Credentials:
    """What a request presented: its Authorization header and X-Site-Key."""

    authorization: str | None = None
    site_key: str | None = None

    def key(self) -> str | None:
        """A site key, from X-Site-Key or from `Authorization: Bearer ork_...`."""
        if self.site_key:
            return self.site_key.strip()
        if self.authorization:
            scheme, _, value = self.authorization.partition(" ")
            if scheme.lower() == "bearer" and looks_like_site_key(value.strip()):
                return value.strip()
        return None


class Access:
    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        site_keys: SiteKeys,
        site_keys_mode: str,
        public_read: bool,
        calendar: Calendar | None,
        limits: dict[str, RateLimiter],
    ) -> None:
        self.verifier = verifier
        self.site_keys = site_keys
        self.site_keys_mode = site_keys_mode
        self.public_read = public_read
        self.calendar = calendar
        self.limits = limits

    @property
    def checks_users(self) -> bool:
        return self.verifier is not None

    async def user(self, credentials: Credentials) -> Identity:
        """The signed-in user; raises AuthError (401) without a valid token."""
        if self.verifier is None:
            return ANONYMOUS
        return await self.verifier.verify(bearer_token(credentials.authorization))

    async def may_command(self, user: Identity, site: str) -> None:
        """Raises AuthError unless `user` may send commands to `site` now."""
        if self.verifier is None or user.is_admin or self.calendar is None:
            return
        try:
            holders = await self.calendar.holders(site)
        except CalendarUnavailable as error:
            raise AuthError(
                f"The reservation calendar cannot be reached ({error}); try again shortly.", 503
            ) from None
        if holders and all(holder.creator_id != user.user_id for holder in holders):
            names = ", ".join(sorted({holder.creator for holder in holders}))
            raise AuthError(f"{names} holds a reservation at {site} right now.")

    async def may_act_as_site(self, site: str, credentials: Credentials) -> None:
        """Raises AuthError unless the request may act as `site` (site keys mode)."""
        if self.site_keys_mode == "off":
            return
        key = credentials.key()
        if key is None:
            if self.site_keys_mode == "required":
                raise AuthError(f"Calls as site {site} need its key (X-Site-Key).")
            return
        owner = await self.site_keys.site_of(key)
        if owner is None:
            raise AuthError("The site key is not valid (unknown or revoked).")
        if owner != site:
            raise AuthError(f"This key belongs to site {owner}, not {site}.", 403)

    async def may_list_sites(self, credentials: Credentials) -> None:
        """Raises AuthError unless the request may see which sites there are."""
        if self.public_read or self.verifier is None:
            return
        await self.user(credentials)

    async def may_read(self, site: str, credentials: Credentials) -> None:
        """Raises AuthError unless the request may read `site` (public read setting)."""
        if self.public_read:
            return
        key = credentials.key()
        if key is not None:
            if await self.site_keys.site_of(key) == site:
                return
            raise AuthError("The site key is not valid for this site.", 403)
        if self.verifier is None:
            return
        await self.user(credentials)

    def limit(self, kind: str, site: str) -> None:
        """Takes one request of `kind` from `site`'s budget; raises AuthError 429 past it."""
        limiter = self.limits.get(kind)
        if limiter is None:
            return
        wait = limiter.take(site)
        if wait > 0:
            raise AuthError(
                f"Too many {kind} for site {site}; slow down.",
                429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

"""Users' names and roles from the provider's userinfo endpoint (auth/userinfo.py).

A real loopback provider whose tokens carry no roles claim, as the real front end's
Auth0 access tokens do not: through a real server process, and the cache, the single
fetch and the provider's failures against the class itself.
"""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from obsrelay.auth.userinfo import Userinfo
from obsrelay.domain.errors import Unavailable
from tests.fakes import AUDIENCE, ISSUER, ROLES_CLAIM, Provider, http_server
from tests.helpers import newjob_body, raw
from tests.servers import ServerProcess, free_port, register_site, start_server

ADMIN = {"name": "Ada Observer", ROLES_CLAIM: {"roles": ["admin"]}}


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[Provider, str]]:
    provider = Provider()
    with http_server(provider.serve) as url:
        yield provider, url


@pytest.fixture(scope="module")
def oidc_server(provider, tmp_path_factory) -> Iterator[ServerProcess]:
    _, url = provider
    workdir = tmp_path_factory.mktemp("userinfo")
    server = start_server(
        f"sqlite:///{workdir / 'userinfo.db'}",
        workdir,
        OBSRELAY_AUTH_MODE="oidc",
        OBSRELAY_OIDC_JWKS_URL=f"{url}/.well-known/jwks.json",
        OBSRELAY_OIDC_ISSUER=ISSUER,
        OBSRELAY_OIDC_AUDIENCE=AUDIENCE,
        OBSRELAY_OIDC_ROLES_CLAIM=ROLES_CLAIM,
        OBSRELAY_OIDC_USERINFO_URL=f"{url}/userinfo",
    )
    try:
        yield server
    finally:
        server.stop()


def a_user(provider: Provider, site: str, profile: dict[str, Any], **behaviour: Any) -> str:
    """A user of its own (the provider is shared by the module's tests); its sub."""
    sub = f"auth0|{site}-{time.monotonic_ns()}"
    provider.profiles[sub] = profile
    if "behaviour" in behaviour:
        provider.userinfo_behaviour[sub] = behaviour["behaviour"]
    if "delay" in behaviour:
        provider.userinfo_delay[sub] = behaviour["delay"]
    return sub


def token_without_roles(provider: Provider, sub: str, lifetime: int = 600) -> str:
    """An access token as the real front end's: a subject, no name, no roles claim."""
    expires = int(time.time()) + lifetime
    no_roles: dict[str, Any] = {ROLES_CLAIM: None}
    return provider.token(sub=sub, name=None, exp=expires, **no_roles)


def submit(server: ServerProcess, site: str, token: str) -> httpx.Response:
    return server.http.post(
        "/jobs/newjob",
        content=raw(newjob_body(site, action="flats")),
        headers={"Authorization": f"Bearer {token}"},
    )


def stored_jobs(server: ServerProcess, site: str) -> list[Any]:
    jobs: list[Any] = server.http.post("/jobs/getrecentjobs", content=raw({"site": site})).json()
    return jobs


def test_the_name_and_roles_come_from_userinfo_once_per_token(oidc_server, provider, site):
    fake, _ = provider
    register_site(oidc_server.database_url, site)
    sub = a_user(fake, site, ADMIN)
    token = token_without_roles(fake, sub)
    for _ in range(3):
        answer = submit(oidc_server, site, token)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["user_id"] == sub
        assert job["user_name"] == "Ada Observer"
        assert job["user_roles"] == ["admin"]  # the site lets an admin command flats
    assert fake.userinfo_fetches[sub] == 1

    # Twenty requests racing with a token not seen yet, while the provider is slow to
    # answer: one fetch between them.
    fake.userinfo_delay[sub] = 0.5
    fresh = token_without_roles(fake, sub, lifetime=900)

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=oidc_server.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/jobs/newjob",
                        content=raw(newjob_body(site)),
                        headers={"Authorization": f"Bearer {fresh}"},
                    )
                    for _ in range(20)
                )
            )

    answers = asyncio.run(race())
    assert [answer.status_code for answer in answers] == [200] * 20
    assert {tuple(answer.json()["user_roles"]) for answer in answers} == {("admin",)}
    assert fake.userinfo_fetches[sub] == 2


def test_a_provider_down_or_refusing_is_a_clear_answer_and_stores_nothing(
    oidc_server, provider, site
):
    fake, _ = provider
    register_site(oidc_server.database_url, site)
    known_user = a_user(fake, site, ADMIN)
    known = token_without_roles(fake, known_user)
    assert submit(oidc_server, site, known).status_code == 200
    kept = len(stored_jobs(oidc_server, site))
    cases = {
        "down": (503, "userinfo"),
        "nonsense": (503, "userinfo"),
        "refuse": (401, "does not accept this token"),
        "another user": (401, "another user"),
    }
    tokens = []
    for behaviour, (status, words) in cases.items():
        token = token_without_roles(fake, a_user(fake, site, ADMIN, behaviour=behaviour))
        tokens.append(token)
        answer = submit(oidc_server, site, token)
        assert answer.status_code == status, f"{behaviour}: {answer.text}"
        sentence = answer.json()
        assert isinstance(sentence, str) and words in sentence and sentence.endswith("."), sentence
    assert len(stored_jobs(oidc_server, site)) == kept
    # A token already known keeps working while the provider is down.
    fake.userinfo_behaviour[known_user] = "down"
    assert submit(oidc_server, site, known).status_code == 200
    log = oidc_server.log()
    assert "userinfo" in log
    assert not any(token in log for token in [known, *tokens]), "a token reached the log"


def claims_of(token: str) -> dict[str, Any]:
    """The claims of a token the provider signed (TokenVerifier checks them in the app)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_a_slow_or_unreachable_provider_is_unavailable(provider, site):
    fake, url = provider
    sub = a_user(fake, site, ADMIN, delay=2.0)
    token = token_without_roles(fake, sub)
    slow = Userinfo(f"{url}/userinfo", ROLES_CLAIM, timeout=0.3)
    nowhere = Userinfo(f"http://127.0.0.1:{free_port()}/userinfo", ROLES_CLAIM)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="did not answer in time"):
            await slow.identity(token, claims_of(token))
        assert time.monotonic() - started < 1.5
        with pytest.raises(Unavailable, match="cannot be reached"):
            await nowhere.identity(token, claims_of(token))
    finally:
        await slow.close()
        await nowhere.close()


async def test_the_cache_is_bounded_and_forgets_expired_tokens(provider, site):
    fake, url = provider
    sub = a_user(fake, site, ADMIN)
    now = [time.time()]
    userinfo = Userinfo(f"{url}/userinfo", ROLES_CLAIM, max_tokens=2, clock=lambda: now[0])
    tokens = [token_without_roles(fake, sub, lifetime=600 + n) for n in range(3)]
    try:
        for token in tokens:
            assert (await userinfo.identity(token, claims_of(token))).roles == ("admin",)
        assert fake.userinfo_fetches[sub] == 3
        # The least recently used of three went when the third came.
        await userinfo.identity(tokens[2], claims_of(tokens[2]))
        assert fake.userinfo_fetches[sub] == 3
        await userinfo.identity(tokens[0], claims_of(tokens[0]))
        assert fake.userinfo_fetches[sub] == 4
        # Past its token's expiry an answer is not used (the profile may have changed).
        now[0] += 3600
        fake.profiles[sub] = {"name": "Ada", ROLES_CLAIM: {"roles": []}}
        assert (await userinfo.identity(tokens[0], claims_of(tokens[0]))).roles == ()
        assert fake.userinfo_fetches[sub] == 5
    finally:
        await userinfo.close()


async def test_a_request_that_gives_up_leaves_the_fetch_to_the_others(provider, site):
    fake, url = provider
    sub = a_user(fake, site, ADMIN, delay=0.3)
    token = token_without_roles(fake, sub)
    userinfo = Userinfo(f"{url}/userinfo", ROLES_CLAIM)
    try:
        first = asyncio.create_task(userinfo.identity(token, claims_of(token)))
        second = asyncio.create_task(userinfo.identity(token, claims_of(token)))
        await asyncio.sleep(0.05)
        first.cancel()
        assert (await second).roles == ("admin",)
        with pytest.raises(asyncio.CancelledError):
            await first
        assert fake.userinfo_fetches[sub] == 1
    finally:
        await userinfo.close()

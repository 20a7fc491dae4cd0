"""User tokens: real RS256/ES256 keys, a JWKS served over loopback HTTP, a real server."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes import AUDIENCE, ISSUER, ROLES_CLAIM, Provider, http_server
from tests.helpers import newjob_body, raw
from tests.servers import ServerProcess, register_site, start_server


@pytest.fixture(scope="module")
def provider() -> Provider:
    return Provider()


@pytest.fixture(scope="module")
def oidc_server(provider: Provider, tmp_path_factory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("oidc")
    with http_server(provider.serve) as jwks_url:
        server = start_server(
            f"sqlite:///{workdir / 'oidc.db'}",
            workdir,
            OBSRELAY_AUTH_MODE="oidc",
            OBSRELAY_OIDC_JWKS_URL=f"{jwks_url}/.well-known/jwks.json",
            OBSRELAY_OIDC_ISSUER=ISSUER,
            OBSRELAY_OIDC_AUDIENCE=AUDIENCE,
            OBSRELAY_OIDC_ROLES_CLAIM=ROLES_CLAIM,
            OBSRELAY_OIDC_REFRESH_SECONDS="1",
        )
        try:
            yield server
        finally:
            server.stop()


def submit(server: ServerProcess, site: str, token: str | None, **body: Any) -> httpx.Response:
    headers = (
        {"Authorization": token}
        if token and token.startswith("Bearer")
        else ({"Authorization": f"Bearer {token}"} if token else {})
    )
    return server.http.post("/jobs/newjob", content=raw(newjob_body(site, **body)), headers=headers)


def recent(server: ServerProcess, site: str) -> list[Any]:
    response = server.http.post("/jobs/getrecentjobs", content=raw({"site": site}))
    result: list[Any] = response.json()
    return result


def test_identity_and_roles_come_from_the_token(oidc_server, provider, site):
    response = submit(
        oidc_server,
        site,
        provider.token(),
        user_id="someone-else",
        user_name="Mallory",
        user_roles=["admin", "x"],
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["user_id"] == "auth0|ada" and job["user_name"] == "Ada Observer"
    assert job["user_roles"] == ["admin"]
    # The roles claim may also be a plain list; the name falls back to nickname, email.
    listed = submit(
        oidc_server,
        site,
        provider.token(**{ROLES_CLAIM: ["observer"], "name": None, "nickname": "ada"}),
    )
    assert listed.json()["user_roles"] == ["observer"] and listed.json()["user_name"] == "ada"
    native = oidc_server.http.post(
        f"/api/v1/sites/{site}/jobs",
        json={"device": "camera", "instance": "camera1", "action": "expose"},
        headers={"Authorization": f"Bearer {provider.token()}"},
    )
    assert native.status_code == 201 and native.json()["user"]["id"] == "auth0|ada"


def _alg_none_token() -> str:
    def part(value: dict[str, Any]) -> str:
        return jwt.utils.base64url_encode(json.dumps(value).encode()).decode()

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _hs256_with_public_key(provider: Provider) -> str:
    public_pem = (
        provider.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 600}
    # PyJWT refuses to sign HS256 with a PEM key, as an attacker's tool would not.
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    import hashlib
    import hmac

    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    return (header + b"." + payload + b"." + jwt.utils.base64url_encode(signature)).decode()


def test_every_bad_token_is_401_and_stores_nothing(oidc_server, provider, site):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 600},
        other,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    cases = {
        "no header": None,
        "Bearer undefined": "Bearer undefined",
        "malformed": "not-a-jwt",
        "expired": provider.token(exp=now - 3600, iat=now - 7200),
        "wrongly signed": forged,
        "wrong audience": provider.token(aud="https://other.example"),
        "wrong issuer": provider.token(iss="https://evil.example/"),
        "alg none": _alg_none_token(),
        "HS256 with the public key": _hs256_with_public_key(provider),
        "unknown key id": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 600},
            other,
            algorithm="RS256",
            headers={"kid": "nobody"},
        ),
        "no subject": provider.token(sub=None),
    }
    for case, token in cases.items():
        response = submit(oidc_server, site, token)
        assert response.status_code == 401, f"{case}: {response.status_code} {response.text}"
        sentence = response.json()
        assert isinstance(sentence, str) and sentence.endswith("."), case
    assert recent(oidc_server, site) == []


def test_es256_tokens_and_key_rotation(oidc_server, provider, site):
    time.sleep(1.1)  # the JWKS is fetched for an unknown key at most once a second here
    provider.add_ec("k2")  # the provider publishes a new key and signs with it
    rotated = submit(oidc_server, site, provider.token(kid="k2"))
    assert rotated.status_code == 200, rotated.text
    # A storm of tokens with made-up key ids costs at most one fetch per interval
    # (counted on the storm's own length: a busy machine may take more than one).
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fetches, started = provider.fetches, time.monotonic()
    for n in range(20):
        forged = jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 600},
            stranger,
            algorithm="RS256",
            headers={"kid": f"made-up-{n}"},
        )
        assert submit(oidc_server, site, forged).status_code == 401
    intervals = 1 + int(time.monotonic() - started)  # the JWKS interval here is 1 s
    assert provider.fetches - fetches <= intervals < 20
    assert submit(oidc_server, site, provider.token(kid="k1")).status_code == 200


def test_local_mode_with_a_token_from_the_cli(tmp_path, site):
    data_dir = tmp_path / "data"
    server = start_server(
        f"sqlite:///{tmp_path / 'local.db'}",
        tmp_path,
        OBSRELAY_AUTH_MODE="local",
        OBSRELAY_DATA_DIR=str(data_dir),
    )
    register_site(server.database_url, site)
    try:
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "obsrelay",
                "tokens",
                "create",
                "--user",
                "u-1",
                "--name",
                "Ada",
                "--role",
                "admin",
                "--expires",
                "1h",
            ],
            env={"OBSRELAY_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        ok = submit(server, site, token)
        assert ok.status_code == 200 and ok.json()["user_roles"] == ["admin"]
        assert submit(server, site, None).status_code == 401
        assert (data_dir / "signing-key.pem").stat().st_mode & 0o077 == 0
        ready = server.http.get("/readyz").json()
        assert ready["auth"] == "local"
    finally:
        server.stop()


def test_none_mode_says_so(server):
    ready = server.http.get("/readyz").json()
    assert ready["auth"] == "none" and "no user is checked" in ready["warning"]
    assert "OBSRELAY_AUTH_MODE=none" in server.log()

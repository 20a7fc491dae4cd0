"""The shipped nginx configuration (deploy/nginx/obsrelay.conf), run by Debian's nginx
with a certificate made here, in front of two obsrelay processes on PostgreSQL + Redis.

Over TLS: the legacy site calls on the old host names, `newjob` after a CORS
preflight, the datastream on `/dev` with jobs submitted through either process, a
long-poll, and the client address, which obsrelay takes from X-Forwarded-For only when
the proxy sent it. Only the lines the file marks EDIT are replaced.
"""

import asyncio
import datetime
import ipaddress
import json
import os
import pwd
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import newjob_body, raw
from tests.servers import ServerProcess, free_port, register_site, start_server, unavailable

pytestmark = pytest.mark.slow  # a proxy and two processes

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "obsrelay.conf"
NAMES = ["relay.example.org", "jobs.example.org", "logs.example.org", "datastream.example.org"]
# The test's client calls from an address of its own, so that the proxy (127.0.0.1, the
# only trusted one) and the client can be told apart on loopback.
CLIENT_ADDRESS = "127.0.0.2"
FORGED = "203.0.113.9"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        unavailable("the reverse-proxy test needs Debian's nginx (make test installs it)")
    assert found
    return found


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for the four names and 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAMES[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in NAMES]
                + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def edited(shipped: str, replacements: dict[str, str]) -> str:
    """The shipped file with each line marked EDIT that starts with a key replaced;
    fails if the file has changed so that one is not found."""
    lines, used = [], set()
    for line in shipped.splitlines():
        stripped = line.strip()
        key = next((k for k in replacements if stripped.startswith(k)), None)
        if key is not None and ("EDIT" in line or "server 127.0.0.1:800" in key):
            used.add(key)
            line = f"    {replacements[key]}"
        lines.append(line)
    missing = set(replacements) - used
    assert not missing, f"deploy/nginx/obsrelay.conf no longer has: {sorted(missing)}"
    return "\n".join(lines) + "\n"


@dataclass
class Deployment:
    processes: tuple[ServerProcess, ServerProcess]
    https_port: int
    http_port: int
    tls: ssl.SSLContext

    def client(self, host: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.https_port}",
            headers={"Host": host},
            transport=httpx.HTTPTransport(verify=self.tls, local_address=CLIENT_ADDRESS),
            timeout=40,
        )


@pytest.fixture(scope="module")
def deployment(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    nginx = nginx_binary()
    redis_url = os.environ.get("OBSRELAY_TEST_REDIS_URL")
    if not redis_url:
        unavailable("the reverse-proxy test needs OBSRELAY_TEST_REDIS_URL")
    assert redis_url
    workdir = tmp_path_factory.mktemp("deploy")
    processes: list[ServerProcess] = []
    proxy: subprocess.Popen[bytes] | None = None
    try:
        for name in ("first", "second"):
            (home := workdir / name).mkdir()
            process = start_server(
                postgres_url,
                home,
                OBSRELAY_BUS_URL=redis_url,
                OBSRELAY_TRUSTED_PROXIES="127.0.0.1",
                OBSRELAY_DATASTREAM_PATH="/dev",
                OBSRELAY_LOG_REQUESTS="true",
                OBSRELAY_CORS_ORIGINS="https://www.photonranch.org",
            )
            processes.append(process)
        cert, key = self_signed(workdir)
        https_port, http_port = free_port(), free_port()
        site_conf = edited(
            SHIPPED.read_text(),
            {
                "server 127.0.0.1:8001;": f"server 127.0.0.1:{processes[0].url.rsplit(':', 1)[1]};",
                "server 127.0.0.1:8002;": f"server 127.0.0.1:{processes[1].url.rsplit(':', 1)[1]};",
                "listen 80;": f"listen 127.0.0.1:{http_port};",
                "listen [::]:80;": "# (no IPv6 in the test)",
                "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
                "listen [::]:443 ssl http2;": "# (no IPv6 in the test)",
                "ssl_certificate ": f"ssl_certificate {cert};",
                "ssl_certificate_key ": f"ssl_certificate_key {key};",
            },
        )
        (workdir / "obsrelay.conf").write_text(site_conf)
        for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (workdir / temp).mkdir()
        # The test's own main file: nginx's `http` block, with everything under workdir.
        main = f"""
            {"user root;" if os.geteuid() == 0 else ""}
            daemon off;
            worker_processes 1;
            pid {workdir}/nginx.pid;
            error_log {workdir}/error.log info;
            events {{ worker_connections 512; }}
            http {{
                access_log {workdir}/access.log;
                client_body_temp_path {workdir}/body;
                proxy_temp_path {workdir}/proxy;
                fastcgi_temp_path {workdir}/fastcgi;
                uwsgi_temp_path {workdir}/uwsgi;
                scgi_temp_path {workdir}/scgi;
                include {workdir}/obsrelay.conf;
            }}
        """
        (workdir / "nginx.conf").write_text(main)
        command = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        proxy = subprocess.Popen(command, stderr=subprocess.PIPE)
        tls = ssl.create_default_context(cafile=str(cert))
        deployment = Deployment((processes[0], processes[1]), https_port, http_port, tls)
        deadline = time.monotonic() + 20
        while True:
            try:
                with deployment.client(NAMES[0]) as client:
                    if client.get("/healthz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert proxy.poll() is None, (workdir / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.1)
        yield deployment
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        for process in processes:
            process.stop()


def test_the_legacy_calls_and_a_preflighted_newjob_over_tls(deployment, site):
    register_site(deployment.processes[0].database_url, site)
    # Plain HTTP is sent on to HTTPS, with the same name and path.
    plain = httpx.get(
        f"http://127.0.0.1:{deployment.http_port}/jobs/getnewjobs",
        headers={"Host": "jobs.example.org"},
    )
    assert plain.status_code == 301
    assert plain.headers["location"] == "https://jobs.example.org/jobs/getnewjobs"

    with deployment.client("jobs.example.org") as jobs:
        # The browser: a preflight, then the job, from the configured origin.
        origin = "https://www.photonranch.org"
        preflight = jobs.options(
            "/jobs/newjob",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == origin
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        submitted = jobs.post(
            f"/jobs/newjob?site={site}",
            content=json.dumps(newjob_body(site)),
            headers={"Origin": origin, "Content-Type": "application/json;charset=UTF-8"},
        )
        assert submitted.status_code == 200, submitted.text
        assert submitted.headers["access-control-allow-origin"] == origin
        ulid = submitted.json()["ulid"]

        # The site: raw JSON with no Content-Type, as the site software sends it.
        claimed = jobs.post("/jobs/getnewjobs", content=raw({"site": site}))
        assert [job["ulid"] for job in claimed.json()] == [ulid]
        assert jobs.post("/jobs/getnewjobs", content=raw({"site": site})).json() == []
        report = {"site": site, "ulid": ulid, "newStatus": "EXPOSING", "secondsUntilComplete": 30}
        updated = jobs.post("/jobs/updatejobstatus", content=raw(report))
        assert updated.status_code == 200 and updated.json()["statusId"] == f"EXPOSING#{ulid}"
        recent = jobs.post("/jobs/getrecentjobs", content=raw({"site": site}))
        assert [job["ulid"] for job in recent.json()] == [ulid]

    with deployment.client("logs.example.org") as logs:
        message = {"site": site, "log_message": "Dome open", "log_level": "INFO"}
        assert logs.post("/logs/newlog", content=raw(message)).status_code == 200
        after = int(time.time()) - 60
        read = logs.get("/logs/recent-logs", params={"site": site, "after_time": after})
        assert [(m["message"], m["log_level"]) for m in read.json()] == [("Dome open", "info")]


def test_the_datastream_on_dev_and_a_long_poll_reach_across_processes(deployment, site):
    register_site(deployment.processes[0].database_url, site)
    first, second = deployment.processes

    async def scenario() -> None:
        url = f"wss://127.0.0.1:{deployment.https_port}/dev?site={site}"
        sockets = [await websockets.connect(url, ssl=deployment.tls) for _ in range(2)]
        try:
            # A job submitted through each process, straight to it: every socket, on
            # whichever process nginx put it, gets both.
            submitted = []
            for process in (first, second):
                async with httpx.AsyncClient(base_url=process.url) as direct:
                    answer = await direct.post("/jobs/newjob", content=raw(newjob_body(site)))
                    submitted.append(answer.json()["ulid"])
            for socket in sockets:
                seen: list[str] = []
                while len(seen) < 2:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
                    assert frame["site"] == site
                    if frame["topic"] == "jobs":
                        seen.append(frame["data"]["ulid"])
                assert seen == submitted
        finally:
            for socket in sockets:
                await socket.close()

        # A long-poll through the proxy, woken by a job submitted to each process.
        tls = httpx.AsyncHTTPTransport(verify=deployment.tls, local_address=CLIENT_ADDRESS)
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{deployment.https_port}",
            headers={"Host": "jobs.example.org"},
            transport=tls,
            timeout=40,
        ) as proxied:
            drained = await proxied.post("/jobs/getnewjobs", content=raw({"site": site}))
            assert len(drained.json()) == 2
            for process in (first, second):
                started = time.monotonic()
                poll = asyncio.create_task(
                    proxied.post("/jobs/getnewjobs", content=raw({"site": site, "wait": 20}))
                )
                await asyncio.sleep(0.5)
                async with httpx.AsyncClient(base_url=process.url) as direct:
                    answer = await direct.post("/jobs/newjob", content=raw(newjob_body(site)))
                woken = await poll
                assert [job["ulid"] for job in woken.json()] == [answer.json()["ulid"]]
                assert woken.headers["x-obsrelay-wait"] == "20"
                assert time.monotonic() - started < 10, "the long-poll was not woken"

    asyncio.run(scenario())


def test_the_client_address_is_forwarded_only_by_the_proxy(deployment, site):
    """Read from the access log (OBSRELAY_LOG_REQUESTS), which names each client."""
    via_proxy, direct = f"/api/v1/sites/{site}-via-proxy", f"/api/v1/sites/{site}-direct"
    with deployment.client("relay.example.org") as proxied:
        # A forged X-Forwarded-For from the client: nginx appends the address it saw,
        # and obsrelay, reading from the right, stops there.
        proxied.get(via_proxy, headers={"X-Forwarded-For": FORGED})
    # Straight to a process, from an address that is not a trusted proxy: the header is
    # not believed at all.
    for process in deployment.processes:
        transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS)
        with httpx.Client(base_url=process.url, transport=transport) as client:
            client.get(direct, headers={"X-Forwarded-For": FORGED})
    deadline = time.monotonic() + 10
    while True:
        logged = [
            line
            for process in deployment.processes
            for line in process.log().splitlines()
            if f"path={via_proxy} " in line or f"path={direct} " in line
        ]
        if len(logged) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(logged) == 3, logged
    for line in logged:
        assert line.endswith(f"client={CLIENT_ADDRESS}"), line


DEPLOY = SHIPPED.parents[1]


def test_the_environment_file_names_only_settings_that_obsrelay_reads():
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY / "obsrelay.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    check = (
        "from obsrelay.config import load_settings, unknown_env_names\n"
        "assert not unknown_env_names(), unknown_env_names()\n"
        "settings = load_settings()\n"
        "assert settings.auth_mode == 'oidc' and settings.bus_url.startswith('redis://')\n"
        "assert settings.datastream_path == '/dev' and settings.trusted_proxy_networks\n"
    )
    environment = {"PATH": os.environ["PATH"], **values, "OBSRELAY_PORT": "8001"}
    ran = subprocess.run(
        [sys.executable, "-c", check], env=environment, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr


def test_the_systemd_unit_is_one_systemd_reads_without_a_complaint(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit file is not checked")
    unit = (DEPLOY / "systemd" / "obsrelay@.service").read_text()
    # Checked as an instance, running this checkout's obsrelay as this machine's user.
    obsrelay = Path(sys.executable).with_name("obsrelay")
    assert "ExecStart=/opt/obsrelay/.venv/bin/obsrelay serve" in unit
    unit = unit.replace("/opt/obsrelay/.venv/bin/obsrelay", str(obsrelay))
    user = pwd.getpwuid(os.getuid()).pw_name
    unit = unit.replace("User=obsrelay", f"User={user}").replace("Group=obsrelay", "")
    (instance := tmp_path / "obsrelay@8001.service").write_text(unit)
    verified = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_the_caddyfile_is_one_caddy_accepts():
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed: deploy/caddy/Caddyfile is not checked")
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(DEPLOY / "caddy" / "Caddyfile"), "--validate"],
        capture_output=True,
        text=True,
    )
    assert adapted.returncode == 0, adapted.stderr
    config = json.loads(adapted.stdout)
    routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
    assert {"jobs.example.org", "logs.example.org", "datastream.example.org"} <= {
        host for route in routes for match in route["match"] for host in match["host"]
    }

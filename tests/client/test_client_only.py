"""`pip install obsrelay` is the client alone: `obsrelay.client` works with httpx and
websockets and none of the server's packages, and the `obsrelay` command says in one
line what to install. The packages of the [server] extra are made unimportable in a
process of its own, which then talks to a real server."""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from obsrelay.entry import SERVER_PACKAGES
from tests.servers import ServerProcess, child_environment, register_site

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# Every top-level package the [server] extra brings, whether obsrelay imports it or not.
SERVER_STACK = sorted(
    SERVER_PACKAGES
    | {"starlette", "uvicorn", "asyncpg", "redis", "jwt", "prometheus_client", "ulid"}
    | {"fastapi_offline", "cryptography", "greenlet", "click", "yaml"}
)
BLOCK = f"""
import importlib.abc, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_STACK!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocked())
"""


def run_without_the_server_stack(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        env=child_environment({}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_client_alone_asks_only_for_httpx_sniffio_and_websockets():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    names = {requirement.split(">")[0].split("[")[0] for requirement in project["dependencies"]}
    assert names == {"httpx", "sniffio", "websockets"}
    assert project["optional-dependencies"]["server"]


def test_the_client_works_without_the_server_stack(server: ServerProcess, site: str):
    register_site(server.database_url, site)
    ran = run_without_the_server_stack(
        f"""
        from obsrelay.client import SiteClient, UserClient

        with UserClient({server.url!r}) as user:
            job = user.submit({site!r}, "camera", "camera1", "expose", {{"time": 1}})
        with SiteClient({server.url!r}, {site!r}) as client:
            [claimed] = client.claim(wait=0)
            assert claimed.ulid == job.ulid, claimed
            assert client.complete(claimed.ulid).primary.status == "COMPLETE"
            client.post_message("done without the server's packages")
        import sys
        assert "fastapi" not in sys.modules and "sqlalchemy" not in sys.modules
        print("ok")
        """
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "ok"


def test_the_command_says_what_to_install():
    ran = run_without_the_server_stack(
        """
        import sys
        sys.argv = ["obsrelay", "--version"]
        from obsrelay.entry import main
        main()
        """
    )
    assert ran.returncode == 1
    [line] = ran.stderr.strip().splitlines()
    assert line.startswith("obsrelay: the command line needs the server install")
    assert "pip install 'obsrelay[server]'" in line

"""The HTTP stack's own ceiling: a bare FastAPI app on the same uvicorn as `obsrelay
serve` (uvloop, httptools, no access log), whose one endpoint parses a small JSON body
and answers a small JSON object. bench/jobs.py runs it beside obsrelay, in the same
rounds, and gives each obsrelay endpoint as a ratio of it.

    python -m bench.echo --port 8123
"""

import argparse
import json
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    # Read as the legacy endpoints read theirs: JSON whatever the Content-Type says.
    body = json.loads(await request.body())
    return {"ok": True, "keys": len(body)}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def run_as_obsrelay_runs(app: Any, port: int, **options: Any) -> None:
    """Serves `app` on loopback with uvicorn set up as `obsrelay serve` sets it up for
    speed (uvloop, httptools, no access log), plus `options`."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        loop="uvloop",
        http="httptools",
        **options,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    run_as_obsrelay_runs(app, parser.parse_args().port)


if __name__ == "__main__":
    main()

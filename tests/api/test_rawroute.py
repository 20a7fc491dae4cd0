"""How a request reaches its endpoint. RequestRoute: an endpoint of the Request alone is
called directly, anything else goes through FastAPI's handler, and both answer, raise
and are documented as before. add_routes: the app's routes are its own, with no
dispatcher per router in front of them."""

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount, Route

from obsrelay.api.compat import jobs as compat_jobs
from obsrelay.api.compat import logs as compat_logs
from obsrelay.api.rawroute import RequestRoute
from obsrelay.app import add_routes, create_app
from obsrelay.config import load_settings

seen: list[str] = []


async def note_call() -> None:
    seen.append("dependency")


router = APIRouter(prefix="/t", route_class=RequestRoute)


@router.post("/direct", summary="Reads its own request")
async def direct(request: Request) -> Response:
    body = await request.body()
    if body == b"refuse":
        raise HTTPException(418, "Refused on purpose.")
    return Response(body[::-1], media_type="text/plain")


@router.get("/query")
async def with_query(request: Request, n: int = Query()) -> Response:
    return Response(str(n * 2))


@router.get("/answer")
async def with_answer(request: Request) -> dict[str, int]:
    return {"answer": 42}


@router.get("/dependency", dependencies=[Depends(note_call)])
async def with_dependency(request: Request) -> Response:
    return Response("ok")


def routes_of(router: APIRouter) -> dict[str, APIRoute]:
    return {route.path: route for route in router.routes if isinstance(route, APIRoute)}


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    return app


def test_only_an_endpoint_of_the_request_alone_is_called_directly():
    routes = routes_of(router)
    assert routes["/t/direct"].get_route_handler() is direct
    for path in ("/t/query", "/t/answer", "/t/dependency"):
        assert routes[path].get_route_handler() is not routes[path].endpoint, path


async def test_both_kinds_answer_raise_and_are_documented(app: FastAPI):
    seen.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.post("/t/direct", content=b"abc")).text == "cba"
        refused = await http.post("/t/direct", content=b"refuse")
        assert refused.status_code == 418 and refused.json() == {"detail": "Refused on purpose."}
        assert (await http.get("/t/query", params={"n": 21})).text == "42"
        assert (await http.get("/t/query", params={"n": "x"})).status_code == 422
        assert (await http.get("/t/answer")).json() == {"answer": 42}
        assert (await http.get("/t/dependency")).text == "ok"
        assert seen == ["dependency"]
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert paths["/t/direct"]["post"]["summary"] == "Reads its own request"
    assert set(paths) == {"/t/direct", "/t/query", "/t/answer", "/t/dependency"}


def test_the_hot_compatible_endpoints_are_called_directly():
    routes = {**routes_of(compat_jobs.router), **routes_of(compat_logs.router)}
    for path in ("/jobs/newjob", "/jobs/getnewjobs", "/jobs/updatejobstatus", "/logs/newlog"):
        assert routes[path].get_route_handler() is routes[path].endpoint, path


def test_the_apps_routes_are_its_own_in_order(tmp_path):
    app = create_app(load_settings(data_dir=str(tmp_path)))
    for route in app.routes:
        assert isinstance(route, APIRoute | APIWebSocketRoute | Mount | Route), route
    paths = [getattr(route, "path", "") for route in app.routes]
    # The site software's calls are matched first.
    assert paths.index("/jobs/getnewjobs") < paths.index("/healthz") < paths.index("/console")


def test_a_router_with_start_handlers_is_not_flattened():
    started = APIRouter(on_startup=[lambda: None])
    with pytest.raises(ValueError, match="include_router"):
        add_routes(FastAPI(), started)

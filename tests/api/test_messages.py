"""User status messages through the compatible /logs API and the native API."""

import time

import httpx
import pytest

from tests.helpers import newlog_body, raw


def test_site_posts_and_browser_reads(http: httpx.Client, site: str):
    now = time.time()
    posted = http.post("/logs/newlog", content=newlog_body(site, "Slewing", "INFO", timestamp=now))
    assert posted.status_code == 200
    recent = http.get(
        "/logs/recent-logs", params={"site": site, "after_time": int(now) - 3600}
    ).json()
    assert recent == [{"site": site, "message": "Slewing", "log_level": "info", "timestamp": now}]


def test_same_second_burst_keeps_every_message(http: httpx.Client, site: str):
    second = float(int(time.time()))
    for i in range(5):
        http.post("/logs/newlog", content=newlog_body(site, f"step {i}", timestamp=second))
    recent = http.get("/logs/recent-logs", params={"site": site}).json()
    assert [m["message"] for m in recent] == [f"step {i}" for i in range(5)]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("INFO", "info"),
        ("WARN", "warning"),
        ("warn", "warning"),
        ("Warning", "warning"),
        ("DEBUG", "debug"),
        ("error", "error"),
        ("CRITICAL", "critical"),
        (None, "info"),
    ],
)
def test_levels_in_any_case(http: httpx.Client, site: str, sent, stored):
    body = {"site": site, "log_message": "x"}
    if sent is not None:
        body["log_level"] = sent
    assert http.post("/logs/newlog", content=raw(body)).status_code == 200
    [message] = http.get("/logs/recent-logs", params={"site": site}).json()
    assert message["log_level"] == stored


def test_missing_timestamp_means_now_and_after_time_filters(http: httpx.Client, site: str):
    before = time.time()
    http.post("/logs/newlog", content=raw({"site": site, "log_message": "now"}))
    [message] = http.get("/logs/recent-logs", params={"site": site}).json()
    assert before - 1 <= message["timestamp"] <= time.time() + 1
    later = http.get("/logs/recent-logs", params={"site": site, "after_time": int(before) + 60})
    assert later.json() == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"log_message": "x"}, "'site'"),
        ({"site": "s1"}, "'log_message'"),
        ({"site": "s1", "log_message": "x", "log_level": "loud"}, "log_level"),
        ({"site": "s1", "log_message": "x", "log_level": 3}, "log_level"),
        ({"site": "s1", "log_message": 42}, "'log_message' must be a string"),
        ({"site": "s1", "log_message": "x" * (16 * 1024 + 1)}, "16 KiB"),
        ({"site": "s1", "log_message": "x", "timestamp": "noon"}, "timestamp"),
        ({"site": "s1", "log_message": "x", "timestamp": True}, "timestamp"),
        ({"site": "s1", "log_message": "x", "timestamp": time.time() + 10 * 86400}, "future"),
        ({"site": "bad site", "log_message": "x"}, "site"),
    ],
)
def test_newlog_bad_input_stores_nothing(http: httpx.Client, body, words):
    response = http.post("/logs/newlog", content=raw(body))
    assert response.status_code == 400
    assert words in response.json()
    assert http.get("/logs/recent-logs", params={"site": "s1", "after_time": 0}).json() == []


def test_recent_logs_bad_input(http: httpx.Client):
    assert http.get("/logs/recent-logs").status_code == 400
    assert "'site'" in http.get("/logs/recent-logs").json()
    response = http.get("/logs/recent-logs", params={"site": "s1", "after_time": "yesterday"})
    assert response.status_code == 400 and "after_time" in response.json()


def test_native_messages_with_cursor_paging(http: httpx.Client, site: str):
    for i in range(5):
        response = http.post(
            f"/api/v1/sites/{site}/messages", json={"message": f"m{i}", "level": "WARN"}
        )
        assert response.status_code == 201
        assert response.json()["level"] == "warning"
    seen, after = [], None
    while True:
        page = http.get(
            f"/api/v1/sites/{site}/messages",
            params={"limit": 2, **({"after": after} if after else {})},
        ).json()
        seen += [m["message"] for m in page["messages"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [f"m{i}" for i in range(5)]
    future = http.get(f"/api/v1/sites/{site}/messages", params={"since": time.time() + 60})
    assert future.json()["messages"] == []


def test_paging_back_from_the_oldest_message_shown(http: httpx.Client, site: str):
    url = f"/api/v1/sites/{site}/messages"
    batch = {"messages": [{"message": f"m{i}"} for i in range(7)]}
    posted = http.post(f"{url}/batch", json=batch).json()["messages"]
    ulids = [message["ulid"] for message in posted]
    back = http.get(url, params={"before": ulids[5], "limit": 3}).json()
    assert [m["message"] for m in back["messages"]] == ["m2", "m3", "m4"]
    assert back["next_after"] is None
    first = http.get(url, params={"before": ulids[1], "limit": 3}).json()
    assert [m["message"] for m in first["messages"]] == ["m0"]
    both = http.get(url, params={"before": ulids[1], "after": ulids[0]})
    assert both.status_code == 400 and "'before' pages back on its own" in both.json()["detail"]
    assert http.get(url, params={"before": "not-a-ulid"}).status_code == 400


def test_native_messages_bad_input(http: httpx.Client, site: str):
    url = f"/api/v1/sites/{site}/messages"
    assert http.post(url, json={"message": "x", "level": "loud"}).status_code == 400
    assert http.post(url, json={"level": "info"}).status_code == 422
    assert http.post(url, json={"message": "x" * 20000}).status_code == 422
    assert http.get(url).json()["messages"] == []


def test_live_events_refuse_obsrelays_own_topics(http: httpx.Client, site: str):
    url = f"/api/v1/sites/{site}/events"
    assert http.post(url, json={"topic": "sitestatus", "data": {"ok": 1}}).status_code == 202
    refused = http.post(url, json={"topic": "jobs", "data": {}})
    assert refused.status_code == 422 and "own topic" in refused.json()["detail"]
    assert http.post(url, json={"topic": "bad topic!", "data": 1}).status_code == 422

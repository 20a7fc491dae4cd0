"""The bus's notices and their JSON between processes."""

import pytest

from obsrelay.bus import Committed, Live, notices


@pytest.mark.parametrize(
    "notice",
    [Committed("mrc1", 7), Committed("mrc1", 8, new_jobs=True), Live("mrc1", "roof", {"open": 1})],
)
def test_bus_notices_survive_the_trip_between_processes(notice):
    assert notices.decode(notices.encode(notice)) == notice


def test_bus_notices_keep_the_json_older_processes_send():
    # Processes of two versions may share one Redis during an upgrade.
    assert notices.decode('{"site":"s","seq":3,"jobs":true}') == Committed("s", 3, True)
    assert notices.decode('{"site":"s","topic":"t","data":null}') == Live("s", "t", None)
    assert notices.encode(Committed("s", 3)) == '{"site":"s","seq":3}'


@pytest.mark.parametrize(
    "text", ["[]", "not json", '{"seq":1}', '{"site":"s"}', '{"site":"s","seq":true}']
)
def test_a_malformed_bus_notice_is_refused(text):
    with pytest.raises(ValueError):
        notices.decode(text)


def test_queued_notices_are_sent_as_fewer_with_the_same_news():
    live = [Live("a", "roof", 1), Live("a", "roof", 2)]
    queued: list[Committed | Live] = [
        Committed("a", 3),
        live[0],
        Committed("b", 9, new_jobs=True),
        Committed("a", 5, new_jobs=True),
        live[1],
        Committed("a", 4),
        Committed("b", 10),
    ]
    assert notices.coalesce(queued) == [
        Committed("a", 5, new_jobs=True),
        live[0],
        Committed("b", 10, new_jobs=True),
        live[1],
    ]
    assert notices.coalesce([]) == []

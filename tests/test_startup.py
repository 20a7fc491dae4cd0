"""What start-up leaves behind: the heap it built, frozen out of the garbage collector's
passes, and a young generation large enough for the requests in flight (docs/adr/0013)."""

import gc

from obsrelay.app import YOUNG_GENERATION_THRESHOLD
from tests.inprocess import InProcessApp


def test_start_up_freezes_what_it_built(sqlite_url, tmp_path):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    threshold = gc.get_threshold()
    gc.set_threshold(700, *threshold[1:])  # Python's own
    app = InProcessApp(sqlite_url, tmp_path)
    try:
        # The app, its routes and its services are among the frozen objects.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *threshold[1:])
        with app.client() as http:
            assert http.get("/healthz").status_code == 200
    finally:
        app.close()
        gc.set_threshold(*threshold)

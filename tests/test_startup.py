"""What start-up leaves behind: the heap it built, frozen out of the garbage collector's
full passes (docs/adr/0013)."""

import gc

from tests.inprocess import InProcessApp


def test_start_up_freezes_what_it_built(sqlite_url, tmp_path):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = InProcessApp(sqlite_url, tmp_path)
    try:
        # The app, its routes and its services are among the frozen objects.
        assert gc.get_freeze_count() > 10_000
        with app.client() as http:
            assert http.get("/healthz").status_code == 200
    finally:
        app.close()

"""Benchmarks: each prints its figures and compares them, in the same run, with a ceiling
or a baseline. Each has a smoke mode (`--smoke`: tiny counts, figures not judged),
which `make test` runs (tests/test_benchmarks.py) so that a benchmark that breaks fails
CI."""

import argparse

SMOKE_NOTE = "smoke run: tiny counts, to show the benchmark works; its figures mean nothing"


def add_smoke_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke", action="store_true", help="A run of a few seconds with tiny counts."
    )

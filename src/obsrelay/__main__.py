"""Lets `python -m obsrelay` run the command line."""

from obsrelay.cli import main

main()

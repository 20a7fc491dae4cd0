"""Lets `python -m obsrelay` run the command line."""

from obsrelay.entry import main

main()

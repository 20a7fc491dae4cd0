"""obsrelay: a self-hosted relay between robotic observatories and the people who use them."""

__version__ = "0.1.0"

"""obsrelay's own API under /api/v1: typed, in the OpenAPI, used by its CLI and client."""

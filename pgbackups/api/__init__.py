"""The HTTP API: `build_api(services)` is the resolver of the api function."""

from pgbackups.api.app import OPENAPI_PATH, build_api

__all__ = ["OPENAPI_PATH", "build_api"]

"""The HTTP API: `pgbackups.api.app.build_api(services)` is the resolver of the api function."""

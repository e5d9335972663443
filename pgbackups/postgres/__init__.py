"""PostgreSQL: connection URLs, the client tools, probing servers, streaming dumps."""

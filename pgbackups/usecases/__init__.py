"""Use cases: what the functions, the API and the dispatcher do, on ports only."""

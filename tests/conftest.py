"""Shared pytest configuration. Fixture sets live in their own modules, listed here."""

# Local mode, Lambda proxy, page and browser fixtures (tiny dataset, tiny model, serve, local front).
pytest_plugins = ["fixtures_local",
                  "fixtures_model"]  # serving: handler/server/container fixtures (random-weight models)

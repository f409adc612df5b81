"""alloy_oauth: OAuth 2.0 connectors, encrypted end-user credentials and background refresh for Django."""

__version__ = "0.1.0.dev0"

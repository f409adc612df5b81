"""The made-up provider of the ``make_connector`` fixture's connectors: nothing answers at
these URLs, tests stub them (the ``responses`` fixture)."""

AUTH_URL = "https://provider.example/oauth/authorize"
TOKEN_URL = "https://provider.example/oauth/token"

"""The made-up provider of the ``make_connector`` fixture's connectors: nothing answers at
these URLs, tests stub them (the ``responses`` fixture)."""

AUTH_URL = "https://provider.example/oauth/authorize"
TOKEN_URL = "https://provider.example/oauth/token"

#: A token response of the example provider, with every field.
TOKEN_BODY = {"access_token": "access-token-value", "token_type": "bearer", "expires_in": 3600,
              "refresh_token": "refresh-token-value", "scope": "read write"}

"""System checks: each id, its trigger and its silence."""

from __future__ import annotations


import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from alloy_oauth import checks as alloy_checks
from alloy_oauth.conf import SETTINGS, app_settings
from alloy_oauth.models import Connector

from tests.support import REPO_DIR

CONFIGURATION_DOCS = (REPO_DIR / "docs" / "configuration.md"
                      ).read_text()


def ids(messages) -> list[str]:
    return [m.id for m in messages]


class TestFernetKeys:
    def test_configured(self, settings):
        assert alloy_checks.check_fernet_keys() == []

    def test_missing_without_debug_is_an_error(self, settings):
        del settings.FERNET_KEYS
        settings.DEBUG = False
        [message] = alloy_checks.check_fernet_keys()
        assert message.id == "alloy_oauth.E001" and message.level == checks.ERROR
        assert "SECRET_KEY" in message.msg and "unreadable" in message.msg

    def test_missing_with_debug_is_a_warning(self, settings):
        settings.FERNET_KEYS = None
        settings.DEBUG = True
        assert ids(alloy_checks.check_fernet_keys()) == ["alloy_oauth.W001"]

    @pytest.mark.parametrize("keys, says", [
        ("one-long-key-but-a-string-0123456789", "must be a list of keys, not a str"),
        ([], "is an empty list"),
        ([None], "FERNET_KEYS[0] is None (an unset environment variable?)"),
        (["a" * 40, ""], "FERNET_KEYS[1] is empty"),
        (["a" * 40, "   "], "FERNET_KEYS[1] is empty"),
    ])
    def test_unusable_keys_are_an_error(self, settings, keys, says):
        settings.FERNET_KEYS = keys
        settings.DEBUG = True  # an error all the same
        [message] = alloy_checks.check_fernet_keys()
        assert message.id == "alloy_oauth.E005" and message.level == checks.ERROR
        assert says in message.msg and "secrets.token_urlsafe" in message.hint

    def test_without_hkdf_keys_must_be_fernet_keys(self, settings):
        from cryptography.fernet import Fernet

        settings.FERNET_USE_HKDF = False
        settings.FERNET_KEYS = [Fernet.generate_key().decode(), "a" * 44]
        [message] = alloy_checks.check_fernet_keys()
        assert message.id == "alloy_oauth.E005" and "FERNET_KEYS[1] is not a Fernet key" in message.msg

    def test_a_short_key_is_a_warning(self, settings):
        settings.FERNET_KEYS = ["a" * 32, "abc"]
        [message] = alloy_checks.check_fernet_keys()
        assert message.id == "alloy_oauth.W006" and message.level == checks.WARNING
        assert "FERNET_KEYS[1] is only 3 characters long" in message.msg

    def test_registered_with_django(self, settings):
        del settings.FERNET_KEYS
        with pytest.raises(SystemCheckError, match="alloy_oauth.E001"):
            call_command("check")


class TestSettings:
    def test_defaults_are_valid(self, settings):
        settings.ALLOY_OAUTH = {}
        assert alloy_checks.check_settings() == []

    def test_not_a_dict(self, settings):
        settings.ALLOY_OAUTH = ["STATE_TTL", 5]
        assert ids(alloy_checks.check_settings()) == ["alloy_oauth.E002"]

    def test_unknown_key(self, settings):
        settings.ALLOY_OAUTH = {"STATE_TLL": 5}
        [message] = alloy_checks.check_settings()
        assert message.id == "alloy_oauth.W002" and "'STATE_TLL'" in message.msg
        assert "STATE_TTL" in message.hint

    @pytest.mark.parametrize("key, value", [
        ("STATE_TTL", 0), ("STATE_TTL", -1), ("HTTP_TIMEOUT", "10"), ("REFRESH_LEAD_TIME", None),
        ("REFRESH_LEAD_TIME", True),
    ])
    def test_invalid_numbers(self, settings, key, value):
        settings.ALLOY_OAUTH = {key: value}
        assert ids(alloy_checks.check_settings()) == ["alloy_oauth.E003"]

    @pytest.mark.parametrize("value", ["app.example.com", "http://app.example.com", 42,
                                       "https://user:pw@app.example.com",
                                       "https://app.example.com/sub", "https://app.example.com?x=1",
                                       "https://app.example.com#top"])
    def test_invalid_callback_base_url(self, settings, value):
        settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": value}
        assert ids(alloy_checks.check_settings()) == ["alloy_oauth.E003"]

    @pytest.mark.parametrize("value", ["https://app.example.com", "https://app.example.com/",
                                       "https://app.example.com:8443", "http://127.0.0.1:8000",
                                       ""])  # empty (an unset environment variable): not set
    def test_valid_callback_base_url(self, settings, value):
        settings.DEBUG = False
        settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": value}
        assert alloy_checks.check_settings() == []

    def test_any_host_without_callback_base_url(self, settings):
        settings.ALLOWED_HOSTS = ["*"]
        settings.ALLOY_OAUTH = {}
        assert ids(alloy_checks.check_settings()) == ["alloy_oauth.W005"]
        settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "https://app.example.com"}
        assert alloy_checks.check_settings() == []

    @pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
    def test_every_setting_is_checked_read_and_documented(self, settings, setting):
        """One declaration per setting (alloy_oauth.conf.SETTINGS): its default is valid and
        is what app_settings reads, a value of the wrong kind is an E003 that names it and
        shows a valid example, and docs/configuration.md has a row for it."""
        assert setting.problem(setting.default) is None
        settings.ALLOY_OAUTH = {}
        assert getattr(app_settings, setting.name) == setting.read(setting.default)
        settings.ALLOY_OAUTH = {setting.name: object()}
        [message] = alloy_checks.check_settings()
        assert message.id == "alloy_oauth.E003" and repr(setting.name) in message.msg
        assert message.hint.startswith(setting.help) and "For example" in message.hint
        assert f"| `{setting.name}` |" in CONFIGURATION_DOCS

    def test_an_unknown_setting_is_no_attribute(self):
        with pytest.raises(AttributeError):
            app_settings.STATE_TLL  # noqa: B018

    def test_lease_must_outlast_requests(self, settings):
        settings.ALLOY_OAUTH = {"LEASE_SECONDS": 30, "HTTP_TIMEOUT": 10}
        [message] = alloy_checks.check_settings()
        assert message.id == "alloy_oauth.E003" and "4 x HTTP_TIMEOUT" in message.msg
        assert message.hint == "Raise LEASE_SECONDS to 40 or more, or lower HTTP_TIMEOUT."


class TestSessions:
    def test_ok(self):
        assert alloy_checks.check_sessions() == []

    def test_middleware_missing(self, settings):
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Session" not in m]
        assert ids(alloy_checks.check_sessions()) == ["alloy_oauth.E004"]

    def test_samesite_strict(self, settings):
        settings.SESSION_COOKIE_SAMESITE = "Strict"
        assert ids(alloy_checks.check_sessions()) == ["alloy_oauth.W003"]


@pytest.mark.django_db
class TestConnectorUrls:
    def test_only_with_databases(self, make_connector):
        make_connector(token_url="http://provider.example/token")
        assert alloy_checks.check_connector_urls() == []

    def test_plain_http_to_a_public_host(self, make_connector, settings):
        connector = make_connector(slug="plain", token_url="http://provider.example/token",
                                   revocation_url="http://provider.example/revoke")
        make_connector(slug="local", token_url="http://127.0.0.1:8000/token")
        messages = alloy_checks.check_connector_urls(databases=["default"])
        assert ids(messages) == ["alloy_oauth.W004", "alloy_oauth.W004"]
        assert all(m.obj == connector for m in messages)
        assert "'plain': token_url must use https" in messages[0].msg
        settings.DEBUG = True
        assert alloy_checks.check_connector_urls(databases=["default"]) == []

    def test_runs_with_check_database(self, make_connector):
        make_connector(token_url="http://provider.example/token")
        call_command("check", databases=["default"])  # warnings do not raise

    def test_all_good(self, make_connector):
        make_connector()
        assert alloy_checks.check_connector_urls(databases=["default"]) == []
        assert Connector.objects.count() == 1


class TestConnectorsValidated:
    def test_active_and_not_validated(self, make_connector):
        new = make_connector(slug="new", validated_at=None)
        make_connector(slug="live")
        make_connector(slug="off", is_active=False, validated_at=None)
        messages = alloy_checks.check_connectors_validated(databases=["default"])
        assert ids(messages) == ["alloy_oauth.W007"]
        assert messages[0].obj == new
        assert "'new' is active but not validated" in messages[0].msg
        assert "Validate credential" in messages[0].hint

    def test_registered_as_a_database_check(self, make_connector):
        make_connector(validated_at=None)
        call_command("check", databases=["default"])  # a warning does not raise
        assert alloy_checks.check_connectors_validated(databases=None) == []

    def test_all_good(self, make_connector):
        make_connector()
        assert alloy_checks.check_connectors_validated(databases=["default"]) == []


class TestEnteredSecretsChecked:
    def test_an_entered_secret_type_without_a_test_request(self, make_connector):
        unchecked = make_connector(slug="unchecked", auth_type="api_key",
                                   api_base_url="https://api.example", test_request_path="")
        make_connector(slug="checked", auth_type="basic", api_base_url="https://api.example",
                       test_request_path="/me")
        make_connector(slug="oauth")  # (its tokens come from the provider: nothing to check)
        messages = alloy_checks.check_entered_secrets_checked(databases=["default"])
        assert ids(messages) == ["alloy_oauth.W008"]
        assert messages[0].obj == unchecked
        assert "'unchecked' (API key) has no test request" in messages[0].msg
        assert "test request path" in messages[0].hint

    def test_registered_as_a_database_check(self, make_connector):
        make_connector(auth_type="bearer")
        call_command("check", databases=["default"])  # a warning does not raise
        assert alloy_checks.check_entered_secrets_checked(databases=None) == []

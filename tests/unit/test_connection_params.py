"""alloy_oauth.connection_params: URL templates, values, metadata. Above all, that no value
reaches beyond its own slot (no SSRF through a connection parameter or the provider's
metadata), whatever its parameter's pattern allows."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from alloy_oauth import connection_params as cp
from alloy_oauth.connection_params import ParameterError

#: A pattern that allows anything: the slot rules alone must hold.
ANYTHING = cp.Param("x", "X", pattern=r"(?s).+")
REGION = cp.Param("region", "Region", choices=("com", "eu", "com.au"))
SHOP = cp.Param("shop", "Shop", pattern=r"[a-z0-9][a-z0-9-]*")
PARAMS = [ANYTHING, REGION, SHOP]

#: Values an attacker would try, in every slot.
HOSTILE = [
    "127.0.0.1", "evil.com/x?", "evil.com#", "evil.com/", "a@evil.com", "user:pw@evil.com",
    "evil.com:8080", ":8080", "..", ".", "../../admin", "%2e%2e", "a%2Fb", "a/b", "a\\b",
    "a?b=c", "a#b", "a b", "a\tb", "a\nb", "a\x00b", "ｅvil.com", "evil。com", "[::1]",
    "localhost", "-evil", "evil-", "a..b", ".evil", "evil.", "http://evil.com",
    "//evil.com", "x" * 300,
]


def build(template: str, value: str, metadata: dict | None = None, **kwargs) -> str:
    return cp.build_url(template, PARAMS, {"x": value, "shop": "acme", "region": "eu"},
                        metadata, **kwargs)


def built_or_refused(template: str, value: str) -> str | None:
    """The URL made with ``value``, or ``None`` when the value is refused (what a slot test
    then checks is that a URL made is still the operator's)."""
    try:
        return build(template, value)
    except ParameterError:
        return None


def slot_holds(url: str, scheme: str, host_suffix: str, port: int | None = None) -> None:
    parts = urlsplit(url)
    assert parts.scheme == scheme
    assert parts.hostname.endswith(host_suffix), url
    assert parts.port == port
    assert parts.username is None and parts.password is None
    assert not parts.fragment


class TestSlots:
    @pytest.mark.parametrize("value", HOSTILE)
    def test_host_slot(self, value):
        url = built_or_refused("https://{x}.myshopify.com:8443/admin/oauth/authorize", value)
        if url is None:
            return
        slot_holds(url, "https", ".myshopify.com", 8443)
        assert urlsplit(url).path == "/admin/oauth/authorize"
        assert value in ("127.0.0.1", "localhost", "a..b") or "." not in value, url

    def test_host_slot_cannot_become_a_loopback_or_another_domain(self):
        assert build("https://{x}.myshopify.com/", "127.0.0.1") == \
            "https://127.0.0.1.myshopify.com/"  # a name under myshopify.com, not 127.0.0.1
        for value in ("evil.com/x?", "evil.com#", "a@evil.com", "evil.com:80", "[::1]"):
            with pytest.raises(ParameterError) as caught:
                build("https://{x}.myshopify.com/", value)
            assert caught.value.name == "x"
            assert value not in str(caught.value)  # (the message never quotes the value)

    @pytest.mark.parametrize("value", HOSTILE)
    def test_path_slot(self, value):
        url = built_or_refused("https://login.example.com/{x}/oauth2/v2.0/token?a=1", value)
        if url is None:
            return
        slot_holds(url, "https", "login.example.com")
        parts = urlsplit(url)
        segments = parts.path.split("/")
        assert len(segments) == 5 and segments[1] == value and value not in (".", "..")
        assert parts.query == "a=1"

    @pytest.mark.parametrize("value", HOSTILE)
    def test_query_slot(self, value):
        url = built_or_refused("https://login.example.com/authorize?tenant={x}&fixed=1", value)
        if url is None:
            return
        slot_holds(url, "https", "login.example.com")
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        assert query == {"tenant": [value], "fixed": ["1"]}

    def test_choices_only_host(self):
        template = "https://accounts.zoho.{region}/oauth/v2/token"
        assert cp.build_url(template, PARAMS, {"region": "com.au"}) == \
            "https://accounts.zoho.com.au/oauth/v2/token"
        with pytest.raises(ParameterError, match="Choose one"):
            cp.build_url(template, PARAMS, {"region": "evil.com"})

    def test_a_pattern_parameter_needs_a_fixed_domain_after_it(self):
        for template in ("https://accounts.zoho.{x}/token", "https://{x}/token",
                         "https://{x}com/token", "https://{x}.com/token",
                         "https://{x}.{region}/token"):
            with pytest.raises(ParameterError, match="fixed domain"):
                build(template, "acme")
        assert build("https://auth-{x}.eu.example.com/t", "acme") == \
            "https://auth-acme.eu.example.com/t"

    @pytest.mark.parametrize("template", [
        "{x}://example.com/", "https://{x}@example.com/", "https://u:{x}@example.com/",
        "https://example.com:{x}/", "https://example.com/#{x}", "https://example.com/?{x}=1",
        "https://[::{x}]/", "{x}/path", "https://example.com/{x", "https://example.com/x}",
        "https://example.com/{}", "https://example.com/{a-b}", "https://example.com/{1a}",
        "https://example.com/{metadata.}",
    ])
    def test_placeholders_out_of_place(self, template):
        with pytest.raises(ParameterError):
            build(template, "acme")
        assert cp.template_problem(template, PARAMS, allow_metadata=True)

    def test_an_undeclared_parameter_builds_nothing(self):
        with pytest.raises(ParameterError, match="not a declared"):
            cp.build_url("https://{nope}.example.com/", PARAMS, {"nope": "a"})

    def test_values_must_match_their_pattern_or_choices(self):
        with pytest.raises(cp.InvalidValues) as caught:
            cp.build_url("https://{shop}.myshopify.com/a/{region}", PARAMS,
                         {"shop": "Acme!", "region": "mars"})
        assert set(caught.value.errors) == {"shop", "region"}
        with pytest.raises(cp.InvalidValues, match="Enter Shop"):
            cp.build_url("https://{shop}.myshopify.com/", PARAMS, {})
        # Surrounding spaces are dropped; the pattern applies to the whole value.
        assert cp.build_url("https://{shop}.myshopify.com/", PARAMS, {"shop": " acme "}) == \
            "https://acme.myshopify.com/"
        with pytest.raises(cp.InvalidValues):
            cp.build_url("https://{shop}.myshopify.com/", PARAMS, {"shop": "acme.evil"})


class TestOriginFromMetadata:
    """``{metadata.instance_url}`` at the start of the API base URL (Salesforce)."""

    TEMPLATE = "{metadata.instance_url}/services/data/v62.0"

    def url(self, value, provider_host="login.salesforce.com"):
        return cp.build_url(self.TEMPLATE, PARAMS, {}, {"instance_url": value},
                            provider_host=provider_host)

    def test_the_provider_names_its_own_host(self):
        assert self.url("https://acme.my.salesforce.com") == \
            "https://acme.my.salesforce.com/services/data/v62.0"
        assert self.url("https://acme--dev.sandbox.my.salesforce.com/") == \
            "https://acme--dev.sandbox.my.salesforce.com/services/data/v62.0"
        assert self.url("http://127.0.0.1:8000", provider_host="127.0.0.1") == \
            "http://127.0.0.1:8000/services/data/v62.0"

    @pytest.mark.parametrize("value", [
        "https://evil.com", "https://salesforce.com.evil.com", "https://evilsalesforce.com",
        "https://127.0.0.1", "http://169.254.169.254", "https://[::1]", "https://2130706433",
        "https://acme.my.salesforce.com/x", "https://acme.my.salesforce.com?x=1",
        "https://acme.my.salesforce.com#x", "https://u:p@acme.my.salesforce.com",
        "https://evil.com@acme.my.salesforce.com", "javascript:alert(1)",
        "file:///etc/passwd", "acme.my.salesforce.com", "//acme.my.salesforce.com",
        "https://acme.my.salesforce.com:99999", "https://acme.my.salesforce.com\n", "",
    ])
    def test_nothing_else(self, value):
        with pytest.raises(ParameterError):
            self.url(value)

    def test_metadata_missing_or_not_text(self):
        for metadata in ({}, {"instance_url": None}, {"instance_url": {"a": 1}}):
            with pytest.raises(ParameterError, match="did not send instance_url"):
                cp.build_url(self.TEMPLATE, PARAMS, {}, metadata, provider_host="x.example.com")

    def test_within_domain_of(self):
        assert cp.within_domain_of("acme.my.salesforce.com", "login.salesforce.com")
        assert cp.within_domain_of("www.zoho.com.au", "accounts.zoho.com.au")
        assert cp.within_domain_of("slack.com", "slack.com")
        assert not cp.within_domain_of("evil.com", "login.salesforce.com")
        assert not cp.within_domain_of("com.au", "accounts.zoho.com.au")
        assert not cp.within_domain_of("127.0.0.2", "127.0.0.1")
        assert not cp.within_domain_of("1.salesforce.com", "10.0.0.1")

    @pytest.mark.parametrize("value", HOSTILE)
    def test_metadata_in_a_path_slot(self, value):
        """QuickBooks' realmId in the API base URL's path: the provider's value stays one
        segment too."""
        try:
            url = cp.build_url("https://quickbooks.api.intuit.com/v3/company/{metadata.realm}",
                               PARAMS, {}, {"realm": value})
        except ParameterError:
            return
        assert urlsplit(url).hostname == "quickbooks.api.intuit.com"
        assert urlsplit(url).path == f"/v3/company/{value}"


class TestTemplates:
    def test_problems(self):
        params = [SHOP, REGION]
        good = ["https://{shop}.myshopify.com/admin/oauth/authorize",
                "https://accounts.zoho.{region}/oauth/v2/auth",
                "https://login.microsoftonline.com/{shop}/oauth2/v2.0/token",
                "https://example.com/token?region={region}", "https://example.com/plain"]
        for template in good:
            assert cp.template_problem(template, params) is None, template
        assert "metadata" in cp.template_problem("{metadata.i}/api", params, ["i"])
        assert cp.template_problem("{metadata.i}/api", params, ["i"], allow_metadata=True) is None
        assert "not a metadata field" in cp.template_problem(
            "{metadata.j}/api", params, ["i"], allow_metadata=True)
        assert "not a declared" in cp.template_problem("https://{x}.example.com/", params)

    def test_each_choice_must_fit_its_slot(self):
        bad = cp.Param("dc", "DC", choices=("com", "evil.com/x"))
        assert "host name" in cp.template_problem("https://accounts.zoho.{dc}/", [bad])
        path = cp.Param("t", "T", choices=("ok", ".."))
        assert "cannot be . or .." in cp.template_problem("https://a.example.com/{t}/", [path])

    def test_sample_url(self):
        assert cp.sample_url("https://{shop}.myshopify.com/a?t={t}") == \
            "https://example.com.myshopify.com/a?t=example"
        assert cp.sample_url("{metadata.i}/a/{b}") == "https://example.com/a/example"
        assert cp.sample_url("https://accounts.zoho.{r}/a") == \
            "https://accounts.zoho.example.com/a"
        assert cp.sample_url("https://a.example.com/#{x}") == "https://a.example.com/#{x}"


class TestSpecs:
    def test_good(self):
        spec = [{"name": "shop", "label": "Shop", "help": "acme in acme.myshopify.com",
                 "pattern": "[a-z0-9][a-z0-9-]*"},
                {"name": "region", "label": "Region", "choices": ["com", "eu"]}]
        assert cp.spec_problems(spec) == []
        assert [p.name for p in cp.declared(spec)] == ["shop", "region"]
        assert cp.declared([{"name": "t", "pattern": "x"}])[0].label == "t"

    @pytest.mark.parametrize("spec, words", [
        ({"name": "shop"}, "JSON list"),
        (["shop"], "JSON object"),
        ([{"label": "Shop", "pattern": "x"}], "needs a name"),
        ([{"name": "1shop", "pattern": "x"}], "needs a name"),
        ([{"name": "shop-name", "pattern": "x"}], "needs a name"),
        ([{"name": "next", "pattern": "x"}], "uses this name itself"),
        ([{"name": "credential", "pattern": "x"}], "uses this name itself"),
        ([{"name": "a", "pattern": "x"}, {"name": "a", "pattern": "y"}], "twice"),
        ([{"name": "a"}], "either a pattern or choices"),
        ([{"name": "a", "pattern": "x", "choices": ["x"]}], "either a pattern or choices"),
        ([{"name": "a", "pattern": "("}], "not a valid regular expression"),
        ([{"name": "a", "pattern": ""}], "1 to 500"),
        ([{"name": "a", "pattern": 5}], "1 to 500"),
        ([{"name": "a", "pattern": "(a+)+$"}], "exponential"),
        ([{"name": "a", "pattern": "([a-z]*)*"}], "exponential"),
        ([{"name": "a", "pattern": "(a|ab)+"}], "exponential"),
        ([{"name": "a", "choices": []}], "choices is a list"),
        ([{"name": "a", "choices": ["x", "x"]}], "choices is a list"),
        ([{"name": "a", "choices": ["x", 1]}], "choices is a list"),
        ([{"name": "a", "choices": "x"}], "choices is a list"),
        ([{"name": "a", "pattern": "x", "label": 3}], "label is text"),
        ([{"name": "a", "pattern": "x", "regex": "y"}], "unknown keys regex"),
    ])
    def test_bad(self, spec, words):
        problems = cp.spec_problems(spec)
        assert any(words in problem for problem in problems), problems
        assert cp.declared(spec if isinstance(spec, list) else []) == [] or len(spec) == 2

    def test_patterns_are_matched_in_full(self):
        param = cp.declared([{"name": "a", "pattern": "[a-z]+"}])[0]
        assert param.problem("abc") is None
        assert param.problem("abc.evil.com")
        assert param.problem("") and param.problem(None) and param.problem(3)
        assert param.problem("é")  # (ASCII only)


def jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


class TestMetadata:
    RESPONSE = {
        "instance_url": "https://acme.my.salesforce.com", "team": {"id": "T1", "name": "Acme"},
        "authed_user": {"id": "U1", "access_token": "xoxp-user-SECRET"},
        "id_token": jwt({"email": "alice@example.com", "sub": "123"}),
        "issued_at": 1700000000, "ratio": 0.5, "flag": True, "nested": {"list": [1, 2]},
        "long": "x" * 501, "control": "a\nb", "nan": float("nan"),
    }

    def test_token_metadata(self):
        fields = {"instance_url": "instance_url", "team_id": "team.id", "user": "authed_user.id",
                  "email": "id_token.email", "issued": "issued_at", "ratio": "ratio",
                  "flag": "flag", "missing": "nope.nope", "object": "team", "list": "nested.list",
                  "long": "long", "control": "control", "nan": "nan",
                  "token": "authed_user.access_token"}
        found = cp.token_metadata(fields, self.RESPONSE,
                                  secrets=["xoxp-user-SECRET", None])
        assert found == {"instance_url": "https://acme.my.salesforce.com", "team_id": "T1",
                         "user": "U1", "email": "alice@example.com", "issued": 1700000000,
                         "ratio": 0.5, "flag": True}

    def test_a_broken_jwt_gives_nothing(self):
        assert cp.token_metadata({"email": "id_token.email"},
                                 {"id_token": "a.!!!.c"}) == {}
        assert cp.token_metadata({"email": "id_token.email"},
                                 {"id_token": "a.bm90IGpzb24.c"}) == {}

    def test_callback_metadata(self):
        query = {"realmId": ["9130"], "repeated": ["a", "b"], "code": ["CODE"],
                 "state": ["STATE"], "long": ["x" * 501], "nul": ["a\x00"]}
        names = ["realmId", "repeated", "code", "state", "long", "nul", "absent"]
        assert cp.callback_metadata(names, query) == {"realmId": "9130"}

    def test_specs(self):
        assert cp.metadata_spec_problems({"instance_url": "instance_url", "t": "team.id"},
                                         ["realmId"]) == {}
        problems = cp.metadata_spec_problems(
            {"1x": "a", "token": "authed_user.access_token", "s": "client_secret",
             "e": "", "d": "a..b", "deep": ".".join("a" * 11)},
            ["code", "realmId", "realmId", "bad-name", "t"])
        text = " ".join(problems["metadata_fields"])
        assert "1x: a key" in text and "access_token holds a secret" in text
        assert "client_secret holds a secret" in text
        assert text.count("dotted path") == 3
        text = " ".join(problems["callback_params"])
        assert "code is a parameter of the OAuth response" in text
        assert "listed twice" in text and "letters, digits" in text
        assert cp.metadata_spec_problems([], {}) == {
            "metadata_fields": [cp.metadata_spec_problems([], [])["metadata_fields"][0]],
            "callback_params": ['Enter a JSON list of names, e.g. ["realmId"].']}

    def test_label(self):
        assert cp.label("{shop} ({metadata.email})", {"shop": "acme"},
                        {"email": "a@example.com"}) == "acme (a@example.com)"
        assert cp.label("{metadata.email}", {}, {}) == ""
        assert cp.label("", {"shop": "acme"}, {}) == ""
        assert cp.label_problem("{shop} {metadata.email}", [SHOP], ["email"]) is None
        assert cp.label_problem("{nope}", [SHOP], []) is not None
        assert cp.label_problem("{metadata.nope}", [SHOP], []) is not None
        assert cp.label_problem("{shop", [SHOP], []) is not None

"""The CORS configuration module: parsing, serializing and matching (no server)."""

from __future__ import annotations

import pytest

from cargohold import cors, errors
from cargohold.cors import CorsConfig, CorsRule

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
GET_ANY = "<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"


def document(*rules: str) -> bytes:
    """A CORSConfiguration with one CORSRule per argument (its inner XML)."""
    inner = "".join(f"<CORSRule>{rule}</CORSRule>" for rule in rules)
    return f'<CORSConfiguration xmlns="{NS}">{inner}</CORSConfiguration>'.encode()


def parse(body: bytes) -> CorsConfig:
    return CorsConfig.parse(body, cors.MAX_DOCUMENT_SIZE)


def config(*rules: CorsRule) -> CorsConfig:
    return CorsConfig(rules)


def rule(origins: tuple[str, ...] = ("*",), methods: tuple[str, ...] = ("GET",),
         headers: tuple[str, ...] = (), expose: tuple[str, ...] = (),
         max_age: int | None = None, rule_id: str | None = None) -> CorsRule:
    return CorsRule(allowed_origins=origins, allowed_methods=methods, allowed_headers=headers,
                    expose_headers=expose, max_age_seconds=max_age, rule_id=rule_id)


FULL_RULE = rule(origins=("https://app.example.com", "http://test.com:80", "https://*.cdn.net"),
                 methods=("GET", "PUT", "HEAD"), headers=("x-amz-*", "Content-Type"),
                 expose=("ETag", "x-amz-request-id"), max_age=3000, rule_id="web & app")
MINIMAL_RULE = rule()


# --- parse and serialize -----------------------------------------------------------------

def test_a_parsed_document_keeps_every_member_as_given() -> None:
    body = document(
        "<ID>web &amp; app</ID>"
        "<AllowedOrigin>https://app.example.com</AllowedOrigin>"
        "<AllowedOrigin>http://test.com:80</AllowedOrigin>"
        "<AllowedOrigin>https://*.cdn.net</AllowedOrigin>"
        "<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>"
        "<AllowedMethod>HEAD</AllowedMethod>"
        "<AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>"
        "<ExposeHeader>ETag</ExposeHeader><ExposeHeader>x-amz-request-id</ExposeHeader>"
        "<MaxAgeSeconds> 3000 </MaxAgeSeconds>",
        GET_ANY)
    assert parse(body) == config(FULL_RULE, MINIMAL_RULE)


def test_get_bucket_cors_writes_members_in_s3_model_order_with_the_s3_namespace() -> None:
    assert config(FULL_RULE, MINIMAL_RULE).to_xml() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<CORSConfiguration xmlns="{NS}">'
        "<CORSRule><ID>web &amp; app</ID>"
        "<AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>"
        "<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>"
        "<AllowedMethod>HEAD</AllowedMethod>"
        "<AllowedOrigin>https://app.example.com</AllowedOrigin>"
        "<AllowedOrigin>http://test.com:80</AllowedOrigin>"
        "<AllowedOrigin>https://*.cdn.net</AllowedOrigin>"
        "<ExposeHeader>ETag</ExposeHeader><ExposeHeader>x-amz-request-id</ExposeHeader>"
        "<MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>"
        "<CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule>"
        "</CORSConfiguration>").encode()


@pytest.mark.parametrize("configuration", [
    config(FULL_RULE, MINIMAL_RULE),
    config(MINIMAL_RULE),
    config(rule(origins=("",), methods=("GET", "PUT", "HEAD"))),
    config(rule(origins=("https://ünïcödé.example", "<&>\"'"), rule_id="\t")),
], ids=["full", "minimal", "empty-origin", "escaped-text"])
def test_a_configuration_survives_xml_and_json_round_trips(configuration: CorsConfig) -> None:
    assert parse(configuration.to_xml()) == configuration
    assert CorsConfig.from_json(configuration.to_json()) == configuration


def test_a_configuration_read_from_storage_matches_like_the_one_parsed() -> None:
    stored = CorsConfig.from_json(config(FULL_RULE).to_json())
    assert stored.actual("https://x.cdn.net", "PUT") == config(FULL_RULE).actual(
        "https://x.cdn.net", "PUT")
    assert stored.preflight("https://x.cdn.net", "GET", ["x-amz-date"]) is not None


def test_rules_with_the_same_members_are_equal_and_hashable() -> None:
    assert rule(origins=("a",)) == rule(origins=("a",))
    assert len({rule(origins=("a",)), rule(origins=("a",)), rule(origins=("b",))}) == 2


def test_a_hundred_rules_an_id_of_255_characters_and_an_empty_origin_are_accepted() -> None:
    assert len(parse(document(*[GET_ANY] * cors.MAX_RULES)).rules) == 100
    assert parse(document(f"<ID>{'i' * 255}</ID>" + GET_ANY)).rules[0].rule_id == "i" * 255
    empty = parse(document("<AllowedOrigin></AllowedOrigin><AllowedMethod>GET</AllowedMethod>"))
    assert empty.rules[0].allowed_origins == ("",)


# --- validation ----------------------------------------------------------------------------

METHOD_MESSAGE = "Found unsupported HTTP method in CORS config. Unsupported method is "

INVALID_DOCUMENTS = [
    ("an unsupported method", document(
        "<AllowedOrigin>*</AllowedOrigin><AllowedOrigin>https://test.com</AllowedOrigin>"
        "<AllowedMethod>GET</AllowedMethod><AllowedMethod>MYMETHOD</AllowedMethod>"),
     errors.InvalidRequest, METHOD_MESSAGE + "MYMETHOD"),
    ("OPTIONS as a method", document(
        "<AllowedOrigin>*</AllowedOrigin><AllowedMethod>OPTIONS</AllowedMethod>"),
     errors.InvalidRequest, METHOD_MESSAGE + "OPTIONS"),
    ("a lower-case method", document(
        "<AllowedOrigin>*</AllowedOrigin><AllowedMethod>get</AllowedMethod>"),
     errors.InvalidRequest, METHOD_MESSAGE + "get"),
    ("an empty method", document("<AllowedOrigin>*</AllowedOrigin><AllowedMethod/>"),
     errors.InvalidRequest, METHOD_MESSAGE),
    ("two wildcards in an origin", document(
        "<AllowedOrigin>*example*.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"),
     errors.InvalidRequest, 'AllowedOrigin "*example*.com" can not have more than one wildcard.'),
    ("two wildcards in an allowed header", document(
        GET_ANY + "<AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>**</AllowedHeader>"),
     errors.InvalidRequest, 'AllowedHeader "**" can not have more than one wildcard.'),
    ("a wildcard in an expose header", document(
        GET_ANY + "<ExposeHeader>ETag</ExposeHeader><ExposeHeader>x-amz-meta-*</ExposeHeader>"),
     errors.InvalidRequest,
     'ExposeHeader "x-amz-meta-*" contains wildcard. '
     "We currently do not support wildcard for ExposeHeader."),
    ("an ID of 256 characters", document(f"<ID>{'i' * 256}</ID>" + GET_ANY),
     errors.InvalidArgument, "ID length should not exceed allowed limit of 255"),
    ("no rule", document(), errors.MalformedXML, None),
    ("101 rules", document(*[GET_ANY] * 101), errors.MalformedXML, None),
    ("a rule without AllowedOrigin", document("<AllowedMethod>GET</AllowedMethod>"),
     errors.MalformedXML, None),
    ("a rule without AllowedMethod", document("<AllowedOrigin>*</AllowedOrigin>"),
     errors.MalformedXML, None),
    ("an empty rule", document(""), errors.MalformedXML, None),
    ("an unknown element in a rule", document(GET_ANY + "<AllowedOrigins>*</AllowedOrigins>"),
     errors.MalformedXML, None),
    ("an element inside a member", document(
        "<AllowedOrigin><b>*</b></AllowedOrigin><AllowedMethod>GET</AllowedMethod>"),
     errors.MalformedXML, None),
    ("two IDs", document("<ID>a</ID><ID>b</ID>" + GET_ANY), errors.MalformedXML, None),
    ("two MaxAgeSeconds", document(
        GET_ANY + "<MaxAgeSeconds>1</MaxAgeSeconds><MaxAgeSeconds>2</MaxAgeSeconds>"),
     errors.MalformedXML, None),
    ("a MaxAgeSeconds that is not a number", document(
        GET_ANY + "<MaxAgeSeconds>soon</MaxAgeSeconds>"), errors.MalformedXML, None),
    ("a negative MaxAgeSeconds", document(GET_ANY + "<MaxAgeSeconds>-1</MaxAgeSeconds>"),
     errors.MalformedXML, None),
    ("a MaxAgeSeconds past an int", document(
        GET_ANY + "<MaxAgeSeconds>2147483648</MaxAgeSeconds>"), errors.MalformedXML, None),
    ("another root", b"<CORSRules><CORSRule>" + GET_ANY.encode() + b"</CORSRule></CORSRules>",
     errors.MalformedXML, None),
    ("another child of the root", document(GET_ANY).replace(b"</CORSConfiguration>",
                                                           b"<Rule/></CORSConfiguration>"),
     errors.MalformedXML, None),
    ("text that is not XML", b"CORSConfiguration", errors.MalformedXML, None),
    ("an empty body", b"", errors.MalformedXML, None),
]


@pytest.mark.parametrize(("body", "error", "message"),
                         [case[1:] for case in INVALID_DOCUMENTS],
                         ids=[case[0] for case in INVALID_DOCUMENTS])
def test_put_bucket_cors_refuses_as_s3_does(body: bytes, error: type[errors.S3Error],
                                            message: str | None) -> None:
    with pytest.raises(error) as raised:
        parse(body)
    assert raised.value.status == 400
    if message is not None:
        assert raised.value.message == message


def test_the_refused_id_is_named_in_the_error() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        parse(document(f"<ID>{'i' * 256}</ID>" + GET_ANY))
    assert raised.value.fields == {"ArgumentName": "ID", "ArgumentValue": "i" * 256}


def test_a_fault_of_shape_anywhere_wins_over_a_fault_of_value() -> None:
    body = document("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>BREW</AllowedMethod>",
                    "<AllowedMethod>GET</AllowedMethod>")
    with pytest.raises(errors.MalformedXML):
        parse(body)


def test_a_document_over_the_size_limit_is_malformed() -> None:
    with pytest.raises(errors.MalformedXML):
        CorsConfig.parse(document(GET_ANY), max_size=20)


# --- origin matching -----------------------------------------------------------------------

ORIGIN_CASES = [
    ("https://*.example.com", "https://app.example.com", True),
    ("https://*.example.com", "https://a.b.example.com", True),
    ("https://*.example.com", "https://.example.com", True),  # `*` matches the empty run
    ("https://*.example.com", "http://app.example.com", False),
    ("https://*.example.com", "https://example.com", False),
    ("https://*.example.com", "https://app.example.com.evil.net", False),
    ("https://*.example.com", "https://app.example.com/", False),
    ("http://www.example.com", "http://www.example.com", True),
    ("http://www.example.com", "https://www.example.com", False),
    ("http://www.example.com", "http://www.example.com:80", False),
    ("http://www.example.com", "HTTP://WWW.EXAMPLE.COM", False),  # case-sensitive
    ("http://localhost:*", "http://localhost:5173", True),
    ("*suffix", "foo.suffix", True),
    ("*suffix", "foo.suffix.get", False),
    ("start*end", "startend", True),
    ("start*end", "start12end", True),
    ("start*end", "0start12end", False),
    ("prefix*", "prefix", True),
    ("prefix*", "bla.prefix", False),
    ("https://*.a+b.com", "https://x.a+b.com", True),  # no regex syntax leaks through
    ("https://*.a+b.com", "https://x.aab.com", False),
    ("*", "https://anything.example", True),
    ("*", "null", True),
    ("*", "localhost:4566", True),
]


@pytest.mark.parametrize(("pattern", "origin", "allowed"), ORIGIN_CASES)
def test_an_allowed_origin_matches_whole_origins_with_one_wildcard(
        pattern: str, origin: str, allowed: bool) -> None:
    rules = config(rule(origins=("https://unrelated.example", pattern)))
    assert (rules.preflight(origin, "GET", []) is not None) is allowed
    assert (rules.actual(origin, "GET") is not None) is allowed


def test_a_wildcard_rule_answers_star_without_credentials() -> None:
    headers = config(rule(origins=("*",))).actual("http://random:1234", "GET")
    assert headers is not None
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers


def test_a_partial_wildcard_echoes_the_origin_and_allows_credentials() -> None:
    headers = config(rule(origins=("http://*.origin.com",))).actual("http://test.origin.com",
                                                                    "GET")
    assert headers is not None
    assert headers["Access-Control-Allow-Origin"] == "http://test.origin.com"
    assert headers["Access-Control-Allow-Credentials"] == "true"


def test_a_rule_naming_the_origin_beside_star_echoes_it() -> None:
    rules = config(rule(origins=("*", "https://app.example.com")))
    named = rules.actual("https://app.example.com", "GET")
    other = rules.actual("https://other.example.com", "GET")
    assert named is not None and named["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert other is not None and other["Access-Control-Allow-Origin"] == "*"


# --- method matching -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "HEAD", "get", "OPTIONS", ""])
def test_a_method_the_rule_does_not_list_matches_nothing(method: str) -> None:
    rules = config(rule(origins=("https://localhost:4200",), methods=("GET",)))
    assert rules.preflight("https://localhost:4200", method, []) is None
    assert rules.actual("https://localhost:4200", method) is None


def test_allow_methods_lists_the_rules_methods_not_the_requested_one() -> None:
    rules = config(rule(methods=("GET", "PUT", "POST", "DELETE")))
    headers = rules.preflight("https://a.example", "PUT", [])
    assert headers is not None
    assert headers["Access-Control-Allow-Methods"] == "GET, PUT, POST, DELETE"


# --- header matching -----------------------------------------------------------------------

HEADER_CASES = [
    (("*",), ["x-amz-request-payer"], "x-amz-request-payer"),
    (("*",), ["x-amz-request-payer, x-amz-expected-bucket-owner"],
     "x-amz-request-payer, x-amz-expected-bucket-owner"),
    (("*",), ["Authorization"], "authorization"),
    (("x-amz-expected-bucket-owner", "x-AMZ-server-SIDE-encryption"),
     ["x-AMZ-expected-BUCKET-owner,x-amz-server-side-encryption"],
     "x-amz-expected-bucket-owner, x-amz-server-side-encryption"),
    (("x-amz-*",), ["X-Amz-Date", "x-amz-content-sha256"], "x-amz-date, x-amz-content-sha256"),
    (("*-type",), ["Content-Type"], "content-type"),
    (("content-type",), ["content-type,,  ,"], "content-type"),
    (("x-amz-*",), ["content-type"], None),
    (("Authorization",), ["authorization, x-amz-date"], None),
    (("x-amz-expected-bucket-owner",), ["x-amz-request-payer"], None),
    ((), ["x-amz-request-payer"], None),
]


@pytest.mark.parametrize(("allowed", "requested", "answered"), HEADER_CASES)
def test_every_requested_header_must_match_an_allowed_header_ignoring_case(
        allowed: tuple[str, ...], requested: list[str], answered: str | None) -> None:
    headers = config(rule(headers=allowed)).preflight("https://a.example", "GET", requested)
    if answered is None:
        assert headers is None
    else:
        assert headers is not None
        assert headers["Access-Control-Allow-Headers"] == answered


@pytest.mark.parametrize("requested", [[], [""], [" , "]])
def test_a_preflight_requesting_no_header_gets_no_allow_headers(requested: list[str]) -> None:
    headers = config(rule()).preflight("https://a.example", "GET", requested)
    assert headers is not None
    assert "Access-Control-Allow-Headers" not in headers


def test_request_header_names_are_split_trimmed_and_lower_cased_in_order() -> None:
    assert cors.request_header_names(["X-B, x-a", "", "Content-Type,,"]) == (
        "x-b", "x-a", "content-type")


# --- rule order and response headers --------------------------------------------------------

def test_the_first_matching_rule_wins() -> None:
    rules = config(
        rule(origins=("https://app.example.com",), methods=("PUT",), max_age=1),
        rule(origins=("https://app.example.com",), methods=("GET",), headers=("x-a",),
             max_age=2),
        rule(origins=("https://*.example.com",), methods=("GET",), headers=("*",), max_age=3),
        rule(origins=("*",), methods=("GET",), headers=("*",), max_age=4),
    )

    def max_age(origin: str, method: str, requested: list[str]) -> str | None:
        headers = rules.preflight(origin, method, requested)
        return None if headers is None else headers["Access-Control-Max-Age"]

    assert max_age("https://app.example.com", "PUT", []) == "1"
    assert max_age("https://app.example.com", "GET", ["x-a"]) == "2"
    assert max_age("https://app.example.com", "GET", ["x-b"]) == "3"  # rule 2 lacks x-b
    assert max_age("https://other.example.com", "GET", []) == "3"
    assert max_age("https://example.org", "GET", []) == "4"
    assert max_age("https://example.org", "PUT", []) is None


def test_a_preflight_answers_exactly_the_headers_s3_sends() -> None:
    rules = config(rule(origins=("https://localhost:4200",), methods=("GET", "PUT"),
                        headers=("*",), max_age=3000))
    assert rules.preflight("https://localhost:4200", "PUT", ["x-amz-date"]) == {
        "Access-Control-Allow-Origin": "https://localhost:4200",
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Max-Age": "3000",
        "Vary": cors.VARY,
        "Access-Control-Allow-Headers": "x-amz-date",
    }


def test_max_age_and_expose_headers_are_sent_only_when_set() -> None:
    with_both = config(rule(expose=("x-amz-id-2", "x-amz-request-id", "x-amz-request-payer"),
                            max_age=600))
    assert with_both.preflight("localhost:4566", "GET", []) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET",
        "Access-Control-Expose-Headers": "x-amz-id-2, x-amz-request-id, x-amz-request-payer",
        "Access-Control-Max-Age": "600",
        "Vary": cors.VARY,
    }
    assert config(rule()).preflight("localhost:4566", "GET", []) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET",
        "Vary": cors.VARY,
    }


def test_a_max_age_of_zero_is_still_sent() -> None:
    headers = config(rule(max_age=0)).preflight("https://a.example", "GET", [])
    assert headers is not None and headers["Access-Control-Max-Age"] == "0"


# --- actual requests -------------------------------------------------------------------------

def test_an_actual_request_gets_the_preflight_headers_without_allow_headers() -> None:
    rules = config(rule(origins=("https://localhost:4200",), methods=("GET", "PUT"),
                        headers=("*",), expose=("ETag",), max_age=3000))
    assert rules.actual("https://localhost:4200", "GET") == {
        "Access-Control-Allow-Origin": "https://localhost:4200",
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Expose-Headers": "ETag",
        "Access-Control-Max-Age": "3000",
        "Vary": cors.VARY,
    }


def test_an_actual_request_from_an_unlisted_origin_gets_no_cors_headers() -> None:
    rules = config(rule(origins=("https://localhost:4200",), methods=("GET", "PUT")))
    assert rules.actual("http://localhost:4200", "GET") is None


def test_an_actual_request_carrying_preflight_headers_is_matched_on_them() -> None:
    # S3 answers a GET that carries Access-Control-Request-Method: PUT, or an unlisted
    # Access-Control-Request-Headers, without CORS headers; the caller passes them through.
    rules = config(rule(origins=("https://localhost:4200",), methods=("GET",),
                        headers=("x-amz-expected-bucket-owner",)))
    assert rules.actual("https://localhost:4200", "PUT") is None
    assert rules.actual("https://localhost:4200", "GET", ["x-amz-request-payer"]) is None
    allowed = rules.actual("https://localhost:4200", "GET", ["x-amz-expected-bucket-owner"])
    assert allowed is not None and "Access-Control-Allow-Headers" not in allowed


def test_each_answer_is_a_fresh_dict_the_caller_may_change() -> None:
    rules = config(rule())
    first = rules.actual("https://a.example", "GET")
    assert first is not None
    first["X-Extra"] = "1"
    assert "X-Extra" not in (rules.actual("https://a.example", "GET") or {})


# --- S3's refusals ---------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "method", "resource_type"), [
    (cors.NOT_ALLOWED, "PUT", "OBJECT"),
    (cors.NOT_ENABLED, "OPTIONS", "BUCKET"),
    (cors.BUCKET_NOT_FOUND, "OPTIONS", "BUCKET"),
])
def test_a_refused_preflight_is_access_forbidden_with_method_and_resource_type(
        message: str, method: str, resource_type: str) -> None:
    error = cors.forbidden(message, method, resource_type)
    assert (error.code, error.status, error.message) == ("AccessForbidden", 403, message)
    assert error.fields == {"Method": method, "ResourceType": resource_type}


def test_s3s_cors_messages_are_verbatim() -> None:
    assert cors.NOT_ENABLED == "CORSResponse: CORS is not enabled for this bucket."
    assert cors.NOT_ALLOWED == (
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution "
        "of Origin, request method / Access-Control-Request-Method or "
        "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")
    assert errors.AccessForbidden().message == cors.NOT_ALLOWED


def test_an_options_request_without_origin_is_a_bad_request() -> None:
    error = cors.origin_needed()
    assert (error.code, error.status, error.message) == (
        "BadRequest", 400, "Insufficient information. Origin request header needed.")


def test_a_bucket_without_cors_answers_no_such_cors_configuration() -> None:
    error = errors.NoSuchCORSConfiguration(BucketName="b")
    assert (error.code, error.status, error.message) == (
        "NoSuchCORSConfiguration", 404, "The CORS configuration does not exist")

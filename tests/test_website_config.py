"""cargohold.website: the PutBucketWebsite document, its validation and the routing decisions.

Expected errors and redirects are S3's as recorded against AWS: LocalStack's AWS-validated
website tests and the ceph s3-tests website suite (which runs against AWS too).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from cargohold import errors
from cargohold.website import (
    BAD_PROTOCOL,
    BAD_SUFFIX,
    BLANK_HOST,
    BOTH_REPLACEMENTS,
    EMPTY_CONDITION,
    NO_INDEX,
    REDIRECT_ALL_ALONE,
    Condition,
    Redirect,
    RedirectAll,
    RoutingRule,
    WebsiteConfig,
    error_page,
    folder_location,
)

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def document(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><WebsiteConfiguration xmlns="{NS}">'
            f"{inner}</WebsiteConfiguration>").encode()


INDEX = "<IndexDocument><Suffix>index.html</Suffix></IndexDocument>"


def rules(*inner: str) -> str:
    return "<RoutingRules>" + "".join(f"<RoutingRule>{r}</RoutingRule>" for r in inner) + (
        "</RoutingRules>")


FULL = document(
    INDEX + "<ErrorDocument><Key>errors/404.html</Key></ErrorDocument>" + rules(
        "<Condition><KeyPrefixEquals>docs/</KeyPrefixEquals></Condition>"
        "<Redirect><ReplaceKeyPrefixWith>documents/</ReplaceKeyPrefixWith></Redirect>",
        "<Condition><HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>"
        "<KeyPrefixEquals>images/</KeyPrefixEquals></Condition>"
        "<Redirect><HostName>example.com</HostName><HttpRedirectCode>302</HttpRedirectCode>"
        "<Protocol>https</Protocol><ReplaceKeyWith>missing.html</ReplaceKeyWith></Redirect>",
        "<Redirect><HostName>other.example</HostName></Redirect>",
    ))


def test_a_full_configuration_keeps_every_member() -> None:
    config = WebsiteConfig.parse(FULL)
    assert config.index_suffix == "index.html"
    assert config.error_key == "errors/404.html"
    assert config.redirect_all is None
    assert config.routing_rules == (
        RoutingRule(Redirect(replace_key_prefix_with="documents/"),
                    Condition(key_prefix="docs/")),
        RoutingRule(Redirect(host_name="example.com", protocol="https", http_redirect_code=302,
                             replace_key_with="missing.html"),
                    Condition(key_prefix="images/", error_code=404)),
        RoutingRule(Redirect(host_name="other.example")),
    )


@pytest.mark.parametrize("body", [
    FULL,
    document(INDEX),
    document("<RedirectAllRequestsTo><HostName>example.com</HostName>"
             "<Protocol>https</Protocol></RedirectAllRequestsTo>"),
    document("<RedirectAllRequestsTo><HostName>example.com</HostName>"
             "</RedirectAllRequestsTo>"),
    document(INDEX + rules("<Condition><KeyPrefixEquals></KeyPrefixEquals></Condition>"
                           "<Redirect><ReplaceKeyPrefixWith></ReplaceKeyPrefixWith></Redirect>")),
])
def test_a_configuration_survives_xml_and_json_round_trips(body: bytes) -> None:
    config = WebsiteConfig.parse(body)
    assert WebsiteConfig.parse(config.to_xml()) == config
    assert WebsiteConfig.from_json(config.to_json()) == config


def test_get_bucket_website_writes_members_in_s3_model_order() -> None:
    root = ET.fromstring(WebsiteConfig.parse(FULL).to_xml())
    assert root.tag == f"{{{NS}}}WebsiteConfiguration"
    assert [child.tag.split("}")[1] for child in root] == [
        "IndexDocument", "ErrorDocument", "RoutingRules"]
    second = root.findall(f"{{{NS}}}RoutingRules/{{{NS}}}RoutingRule")[1]
    assert [c.tag.split("}")[1] for c in second.find(f"{{{NS}}}Condition") or []] == [
        "HttpErrorCodeReturnedEquals", "KeyPrefixEquals"]
    assert [c.tag.split("}")[1] for c in second.find(f"{{{NS}}}Redirect") or []] == [
        "HostName", "HttpRedirectCode", "Protocol", "ReplaceKeyWith"]
    redirect_all = WebsiteConfig(redirect_all=RedirectAll("example.com", "https")).to_xml()
    assert b"<RedirectAllRequestsTo><HostName>example.com</HostName><Protocol>https</Protocol>" \
        b"</RedirectAllRequestsTo></WebsiteConfiguration>" in redirect_all
    assert b"IndexDocument" not in redirect_all


def test_comments_and_whitespace_between_elements_are_accepted() -> None:
    body = document("\n  <!-- a site -->\n  " + INDEX + "\n  <RoutingRules>\n  <!-- one -->\n"
                    "  <RoutingRule>\n<Redirect>\n<HostName>a.example</HostName>\n</Redirect>\n"
                    "  </RoutingRule>\n  </RoutingRules>\n")
    assert WebsiteConfig.parse(body).routing_rules == (
        RoutingRule(Redirect(host_name="a.example")),)


def _refusal(body: bytes) -> errors.S3Error:
    with pytest.raises(errors.S3Error) as caught:
        WebsiteConfig.parse(body)
    return caught.value


@pytest.mark.parametrize(("body", "code", "message"), [
    # No site and no redirect.
    (document(""), "InvalidArgument", NO_INDEX),
    (document("<ErrorDocument><Key>e.html</Key></ErrorDocument>"), "InvalidArgument", NO_INDEX),
    # The suffix: present, non-empty, no slash.
    (document("<IndexDocument><Suffix></Suffix></IndexDocument>"), "InvalidArgument",
     BAD_SUFFIX),
    (document("<IndexDocument></IndexDocument>"), "InvalidArgument", BAD_SUFFIX),
    (document("<IndexDocument><Suffix>a/index.html</Suffix></IndexDocument>"),
     "InvalidArgument", BAD_SUFFIX),
    # RedirectAllRequestsTo goes alone, names a host and an http(s) protocol.
    (document(INDEX + "<RedirectAllRequestsTo><HostName>example.com</HostName>"
                      "</RedirectAllRequestsTo>"), "InvalidArgument", REDIRECT_ALL_ALONE),
    (document("<RedirectAllRequestsTo><HostName>a.example</HostName></RedirectAllRequestsTo>"
              + rules("<Redirect><HostName>b.example</HostName></Redirect>")),
     "InvalidArgument", REDIRECT_ALL_ALONE),
    (document("<RedirectAllRequestsTo><Protocol>https</Protocol></RedirectAllRequestsTo>"),
     "MalformedXML", None),
    (document("<RedirectAllRequestsTo><HostName>a.example</HostName><Protocol>ftp</Protocol>"
              "</RedirectAllRequestsTo>"), "InvalidRequest", BAD_PROTOCOL),
    # ErrorDocument needs a key.
    (document(INDEX + "<ErrorDocument></ErrorDocument>"), "MalformedXML", None),
    (document(INDEX + "<ErrorDocument><Key></Key></ErrorDocument>"), "MalformedXML", None),
    # Routing rules.
    (document(INDEX + "<RoutingRules></RoutingRules>"), "MalformedXML", None),
    (document(INDEX + rules("<Condition><KeyPrefixEquals>a</KeyPrefixEquals></Condition>")),
     "MalformedXML", None),
    (document(INDEX + rules("<Redirect><ReplaceKeyPrefixWith>a</ReplaceKeyPrefixWith>"
                            "<ReplaceKeyWith>b</ReplaceKeyWith></Redirect>")),
     "InvalidRequest", BOTH_REPLACEMENTS),
    (document(INDEX + rules("<Condition></Condition><Redirect><HostName>a.example</HostName>"
                            "</Redirect>")), "InvalidRequest", EMPTY_CONDITION),
    (document(INDEX + rules("<Redirect><Protocol>http2</Protocol></Redirect>")),
     "InvalidRequest", BAD_PROTOCOL),
    (document(INDEX + rules("<Redirect><HostName></HostName></Redirect>")),
     "InvalidRequest", BLANK_HOST),
    (document(INDEX + rules("<Redirect><HttpRedirectCode>300</HttpRedirectCode></Redirect>")),
     "InvalidRequest",
     "The provided HTTP redirect code (300) is not valid. Valid codes are 3XX except 300."),
    (document(INDEX + rules("<Redirect><HttpRedirectCode>200</HttpRedirectCode></Redirect>")),
     "InvalidRequest",
     "The provided HTTP redirect code (200) is not valid. Valid codes are 3XX except 300."),
    (document(INDEX + rules("<Redirect><HttpRedirectCode>x</HttpRedirectCode></Redirect>")),
     "MalformedXML", None),
    (document(INDEX + rules("<Condition><HttpErrorCodeReturnedEquals>302"
                            "</HttpErrorCodeReturnedEquals></Condition>"
                            "<Redirect><HostName>a.example</HostName></Redirect>")),
     "InvalidRequest",
     "The provided HTTP error code (302) is not valid. Valid codes are 4XX or 5XX."),
    # Shape.
    (b"<CORSConfiguration/>", "MalformedXML", None),
    (b"<WebsiteConfiguration", "MalformedXML", None),
    (document(INDEX + INDEX), "MalformedXML", None),
    (document(INDEX + "<Unknown/>"), "MalformedXML", None),
    (document("<IndexDocument><Suffix>index.html</Suffix><Suffix>b</Suffix></IndexDocument>"),
     "MalformedXML", None),
    (document(INDEX + rules("<Redirect><HostName>a</HostName><Port>1</Port></Redirect>")),
     "MalformedXML", None),
])
def test_put_bucket_website_refuses_as_s3_does(body: bytes, code: str,
                                               message: str | None) -> None:
    refusal = _refusal(body)
    assert refusal.code == code
    if message is not None:
        assert refusal.message == message


def test_the_refused_argument_is_named_in_the_error() -> None:
    assert _refusal(document("")).fields == {"ArgumentName": "IndexDocument",
                                             "ArgumentValue": "null"}
    nested = document("<IndexDocument><Suffix>a/b.html</Suffix></IndexDocument>")
    assert _refusal(nested).fields == {"ArgumentName": "IndexDocument",
                                       "ArgumentValue": "a/b.html"}
    both = document(INDEX + "<RedirectAllRequestsTo><HostName>a</HostName>"
                            "</RedirectAllRequestsTo>")
    assert _refusal(both).fields == {"ArgumentName": "RedirectAllRequestsTo",
                                     "ArgumentValue": "not null"}


def test_fifty_rules_are_accepted_and_fifty_one_refused() -> None:
    rule = "<Redirect><HostName>a.example</HostName></Redirect>"
    assert len(WebsiteConfig.parse(document(INDEX + rules(*[rule] * 50))).routing_rules) == 50
    assert _refusal(document(INDEX + rules(*[rule] * 51))).code == "InvalidRequest"


def test_every_valid_redirect_code_is_accepted() -> None:
    for code in (301, 302, 303, 304, 305, 307, 308, 399):
        body = document(INDEX + rules(f"<Redirect><HttpRedirectCode>{code}</HttpRedirectCode>"
                                      "</Redirect>"))
        assert WebsiteConfig.parse(body).routing_rules[0].status == code


# --- routing decisions ---

SITE = WebsiteConfig.parse(FULL)


def test_folders_read_their_index_document() -> None:
    assert SITE.index_key("") == "index.html"
    assert SITE.index_key("docs/") == "docs/index.html"
    assert SITE.index_key("docs/a/") == "docs/a/index.html"
    assert SITE.index_key("docs/page.html") == "docs/page.html"
    assert SITE.folder_index_key("docs") == "docs/index.html"
    assert folder_location("docs") == "/docs/"
    assert folder_location("my docs/é") == "/my%20docs/%C3%A9/"


def test_prefix_rules_decide_before_the_lookup_and_error_rules_after() -> None:
    assert SITE.rule_for("docs/a.html") is SITE.routing_rules[0]
    # The third rule has no condition: it takes every request the first does not.
    assert SITE.rule_for("images/a.png") is SITE.routing_rules[2]
    only_errors = WebsiteConfig.parse(document(INDEX + rules(
        "<Condition><HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>"
        "<KeyPrefixEquals>images/</KeyPrefixEquals></Condition>"
        "<Redirect><HostName>a.example</HostName></Redirect>",
        "<Condition><HttpErrorCodeReturnedEquals>403</HttpErrorCodeReturnedEquals></Condition>"
        "<Redirect><HostName>b.example</HostName></Redirect>")))
    first, second = only_errors.routing_rules
    assert only_errors.rule_for("images/a.png") is None
    assert only_errors.rule_for("images/a.png", 404) is first
    assert only_errors.rule_for("other/a.png", 404) is None
    assert only_errors.rule_for("other/a.png", 403) is second
    assert only_errors.rule_for("images/a.png", 500) is None


# (rule, key, expected Location): the ceph s3-tests routing table, run against AWS.
EXAMPLE1 = RoutingRule(Redirect(replace_key_prefix_with="documents/"),
                       Condition(key_prefix="docs/"))
EXAMPLE1_HTTPS = RoutingRule(Redirect(protocol="https", replace_key_prefix_with="documents/"),
                             Condition(key_prefix="docs/"))
EXAMPLE1_HOST = RoutingRule(Redirect(protocol="https", host_name="xyzzy",
                                     replace_key_prefix_with="documents/"),
                            Condition(key_prefix="docs/"))
EXAMPLE2 = RoutingRule(Redirect(replace_key_with="folderdeleted.html"),
                       Condition(key_prefix="images/"))
EXAMPLE3 = RoutingRule(Redirect(host_name="ec2-11-22-333-44.compute-1.amazonaws.com",
                                replace_key_prefix_with="report-404/"),
                       Condition(error_code=404))
EXAMPLE3_PREFIX = RoutingRule(Redirect(host_name="ec2-11-22-333-44.compute-1.amazonaws.com",
                                       replace_key_prefix_with="report-404/"),
                              Condition(key_prefix="images/", error_code=404))
HOST = "site.nyc3-static.localhost:9000"
EC2 = "ec2-11-22-333-44.compute-1.amazonaws.com"


@pytest.mark.parametrize(("rule", "key", "location"), [
    (EXAMPLE1, "docs/", f"http://{HOST}/documents/"),
    (EXAMPLE1, "docs/x", f"http://{HOST}/documents/x"),
    (EXAMPLE1_HTTPS, "docs/x", f"https://{HOST}/documents/x"),
    (EXAMPLE1_HOST, "docs/x", "https://xyzzy/documents/x"),
    (EXAMPLE2, "images/", f"http://{HOST}/folderdeleted.html"),
    (EXAMPLE2, "images/x", f"http://{HOST}/folderdeleted.html"),
    (EXAMPLE3, "x", f"http://{EC2}/report-404/x"),
    (EXAMPLE3, "images/x", f"http://{EC2}/report-404/images/x"),
    (EXAMPLE3_PREFIX, "images/x", f"http://{EC2}/report-404/x"),
    (RoutingRule(Redirect(host_name="a.example")), "my page/é.html",
     "http://a.example/my%20page/%C3%A9.html"),
])
def test_redirect_locations_follow_s3(rule: RoutingRule, key: str, location: str) -> None:
    assert rule.location(key, "http", HOST) == location
    assert rule.status == 301


def test_redirect_all_keeps_the_path_and_picks_the_protocol() -> None:
    assert RedirectAll("example.com").location("/a/b%20c", "http") == "http://example.com/a/b%20c"
    assert RedirectAll("example.com", "https").location("/", "http") == "https://example.com/"
    assert RedirectAll("example.com").location("", "https") == "https://example.com/"


def test_error_pages_are_html_naming_the_error_and_the_error_document_failure() -> None:
    page = error_page(404, "Not Found", "NoSuchKey", "The specified key does not exist.",
                      {"Key": "a<b>.html"}, "REQ1").decode()
    assert page.startswith("<html>\n<head><title>404 Not Found</title></head>")
    assert "<h1>404 Not Found</h1>" in page
    assert "<li>Code: NoSuchKey</li>" in page
    assert "<li>Message: The specified key does not exist.</li>" in page
    assert "<li>Key: a&lt;b&gt;.html</li>" in page
    assert "<li>RequestId: REQ1</li>" in page
    assert "Custom Error Document" not in page
    nested = error_page(403, "Forbidden", "AccessDenied", "Access Denied", {}, "REQ2",
                        ("AccessDenied", "Access Denied", "error.html")).decode()
    assert "<h1>403 Forbidden</h1>" in nested
    assert ("<h3>An Error Occurred While Attempting to Retrieve a Custom Error Document</h3>"
            in nested)
    assert "<li>Key: error.html</li>" in nested

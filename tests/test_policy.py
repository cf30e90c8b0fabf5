"""The bucket-policy engine: validation at Put time and AWS IAM evaluation semantics."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from cargohold import errors, policy
from cargohold.operations import ALL_OPERATIONS
from cargohold.policy import ACTIONS, BucketPolicy, Decision, RequestFacts

BUCKET = "bkt"
OWNER = "owner-canonical-id"
ACCOUNT_B = "111122223333"
ALL = ["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"]

ALLOW, DENY, NONE = Decision.ALLOW, Decision.DENY, Decision.NONE


def stmt(
    effect: str = "Allow",
    action: object = "s3:GetObject",
    resource: object = "arn:aws:s3:::bkt/*",
    principal: object = "*",
    condition: dict[str, Any] | None = None,
    **extra: object,
) -> dict[str, Any]:
    """A statement; pass ``principal=None`` (etc.) to leave an element out."""
    out: dict[str, Any] = {"Effect": effect}
    for name, value in (("Principal", principal), ("Action", action), ("Resource", resource)):
        if value is not None:
            out[name] = value
    if condition is not None:
        out["Condition"] = condition
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def doc(*statements: dict[str, Any], **top: object) -> bytes:
    body: dict[str, Any] = {"Version": "2012-10-17", "Statement": list(statements)}
    body.update(top)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def parse(*statements: dict[str, Any]) -> BucketPolicy:
    return BucketPolicy.parse(doc(*statements), BUCKET)


def facts(
    action: str = "s3:GetObject",
    key: str | None = "k",
    who: Sequence[str] | None = (ACCOUNT_B,),
    context: Mapping[str, Sequence[str]] | None = None,
) -> RequestFacts:
    """A request; ``who=None`` is anonymous, ``key=None`` targets the bucket."""
    resource = f"arn:aws:s3:::{BUCKET}" + ("" if key is None else f"/{key}")
    return RequestFacts(
        action=action, resource=resource, principal_ids=frozenset(who or ()),
        anonymous=who is None, context=context or {})


# --------------------------------------------------------------------------------------------
# Combining statements
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("statements", "expected"), [
    pytest.param([stmt()], ALLOW, id="an allow that matches allows"),
    pytest.param([stmt(), stmt("Deny")], DENY, id="an explicit deny beats an allow"),
    pytest.param([stmt("Deny"), stmt()], DENY,
                 id="an explicit deny beats an allow listed after it"),
    pytest.param([stmt(action="s3:PutObject")], NONE, id="no matching statement is NONE"),
    pytest.param([stmt("Deny", action="s3:PutObject"), stmt()], ALLOW,
                 id="a deny for another action leaves the allow"),
    pytest.param([stmt("Deny")], DENY, id="a lone deny denies"),
    pytest.param([stmt(resource="arn:aws:s3:::bkt/other/*")], NONE,
                 id="an allow for other keys is NONE"),
])
def test_statements_combine(statements: list[dict[str, Any]], expected: Decision) -> None:
    assert parse(*statements).evaluate(facts()) is expected


# --------------------------------------------------------------------------------------------
# Principal / NotPrincipal
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("principal", "who", "expected"), [
    pytest.param("*", None, ALLOW, id="star matches an anonymous requester"),
    pytest.param("*", [ACCOUNT_B], ALLOW, id="star matches an account"),
    pytest.param({"AWS": "*"}, None, ALLOW, id="AWS star matches an anonymous requester"),
    pytest.param({"AWS": ["*"]}, [ACCOUNT_B], ALLOW, id="AWS star in a list matches an account"),
    pytest.param({"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"}, [ACCOUNT_B], ALLOW,
                 id="a root ARN matches its account"),
    pytest.param({"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"}, ["444455556666"], NONE,
                 id="a root ARN does not match another account"),
    pytest.param({"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"}, None, NONE,
                 id="a root ARN does not match an anonymous requester"),
    pytest.param({"AWS": f"arn:aws:iam::{ACCOUNT_B}:user/team/alice"}, [ACCOUNT_B], ALLOW,
                 id="a user ARN matches its account"),
    pytest.param({"AWS": ACCOUNT_B}, [ACCOUNT_B, "b-canonical"], ALLOW,
                 id="a bare account id matches"),
    pytest.param({"AWS": ["other", ACCOUNT_B]}, [ACCOUNT_B], ALLOW,
                 id="any principal of a list matches"),
    pytest.param({"CanonicalUser": "b-canonical"}, [ACCOUNT_B, "b-canonical"], ALLOW,
                 id="a canonical user id matches"),
    pytest.param({"CanonicalUser": "b-canonical"}, ["c-canonical"], NONE,
                 id="another canonical user id does not match"),
    pytest.param({"Service": "logging.s3.amazonaws.com"}, [ACCOUNT_B], NONE,
                 id="a service principal matches no requester"),
])
def test_principal_matching(principal: object, who: list[str] | None, expected: Decision) -> None:
    assert parse(stmt(principal=principal)).evaluate(facts(who=who)) is expected


# --------------------------------------------------------------------------------------------
# Action / Resource and their Not forms
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("statement", "request_", "expected"), [
    pytest.param(stmt(action="s3:Get*"), facts(), ALLOW, id="s3 Get star matches GetObject"),
    pytest.param(stmt(action="s3:Get*"), facts("s3:PutObject"), NONE,
                 id="s3 Get star does not match PutObject"),
    pytest.param(stmt(action="S3:GETOBJECT"), facts(), ALLOW, id="actions are case-insensitive"),
    pytest.param(stmt(action="s3:getobjec?"), facts(), ALLOW,
                 id="a question mark matches one character of an action"),
    pytest.param(stmt(action="*", resource="*"), facts("s3:DeleteBucket", key=None), ALLOW,
                 id="star matches every action"),
    pytest.param(stmt(action=["s3:PutObject", "s3:GetObject"]), facts(), ALLOW,
                 id="any action of a list matches"),
    pytest.param(stmt(resource="arn:aws:s3:::bkt/K"), facts(key="k"), NONE,
                 id="resources are case-sensitive"),
    pytest.param(stmt(resource="arn:aws:s3:::bkt/a?c"), facts(key="abc"), ALLOW,
                 id="a question mark matches one character of a key"),
    pytest.param(stmt(resource="arn:aws:s3:::bkt/a/*"), facts(key="a/b/c:d"), ALLOW,
                 id="a key wildcard spans slashes and colons"),
    pytest.param(stmt(resource="arn:aws:s3:::bkt/*"), facts("s3:ListBucket", key=None), NONE,
                 id="an object pattern does not cover the bucket"),
    pytest.param(stmt(action="s3:*", resource="arn:aws:s3:::bkt"), facts(), NONE,
                 id="the bucket ARN does not cover its objects"),
    pytest.param(stmt(action="s3:*", resource="arn:aws:s3:::bkt*"), facts(), ALLOW,
                 id="a bucket-name wildcard also covers the objects"),
    pytest.param(stmt(action=None, NotAction="s3:DeleteObject"), facts(), ALLOW,
                 id="NotAction covers the other actions"),
    pytest.param(stmt(action=None, NotAction="s3:Get*"), facts(), NONE,
                 id="NotAction excludes the actions it names"),
    pytest.param(stmt(resource=None, NotResource="arn:aws:s3:::bkt/secret/*"), facts(), ALLOW,
                 id="NotResource covers the other resources"),
    pytest.param(stmt(resource=None, NotResource="arn:aws:s3:::bkt/secret/*"),
                 facts(key="secret/x"), NONE, id="NotResource excludes what it names"),
    pytest.param(stmt(principal=None, NotPrincipal={"AWS": ACCOUNT_B}), facts(who=["other"]),
                 ALLOW, id="NotPrincipal covers the other principals"),
    pytest.param(stmt(principal=None, NotPrincipal={"AWS": ACCOUNT_B}), facts(who=None),
                 ALLOW, id="NotPrincipal covers an anonymous requester"),
    pytest.param(stmt(principal=None, NotPrincipal={"AWS": ACCOUNT_B}), facts(), NONE,
                 id="NotPrincipal excludes the principals it names"),
])
def test_action_resource_and_not_forms(
    statement: dict[str, Any], request_: RequestFacts, expected: Decision
) -> None:
    assert parse(statement).evaluate(request_) is expected


def test_deny_with_not_principal_spares_only_the_named_account() -> None:
    p = parse(stmt(action="s3:*", resource=ALL),
              stmt("Deny", action="s3:*", resource=ALL, principal=None,
                   NotPrincipal={"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"}))
    assert p.evaluate(facts()) is ALLOW
    assert p.evaluate(facts(who=["intruder"])) is DENY
    assert p.evaluate(facts(who=None)) is DENY


# --------------------------------------------------------------------------------------------
# Conditions: each operator family, positive and negative
# --------------------------------------------------------------------------------------------

IP4, IP6 = "203.0.113.0/24", "2001:db8:1234::/48"

CONDITION_CASES = [
    # String
    ("StringEquals matches an exact value",
     {"StringEquals": {"s3:x-amz-acl": "public-read"}}, {"s3:x-amz-acl": ["public-read"]}, True),
    ("StringEquals is case-sensitive on values",
     {"StringEquals": {"s3:x-amz-acl": "Public-Read"}}, {"s3:x-amz-acl": ["public-read"]}, False),
    ("StringEquals treats a star literally",
     {"StringEquals": {"s3:prefix": "a*"}}, {"s3:prefix": ["abc"]}, False),
    ("condition keys are case-insensitive",
     {"StringEquals": {"AWS:UserAgent": "cli"}}, {"aws:useragent": ["cli"]}, True),
    ("several values of one key are ORed",
     {"StringEquals": {"s3:x-amz-acl": ["private", "public-read"]}},
     {"s3:x-amz-acl": ["public-read"]}, True),
    ("StringNotEquals with several values means none of them",
     {"StringNotEquals": {"s3:x-amz-acl": ["private", "public-read"]}},
     {"s3:x-amz-acl": ["public-read"]}, False),
    ("StringNotEquals holds for a value that is none of them",
     {"StringNotEquals": {"s3:x-amz-acl": ["private", "public-read"]}},
     {"s3:x-amz-acl": ["authenticated-read"]}, True),
    ("StringEqualsIgnoreCase ignores case",
     {"StringEqualsIgnoreCase": {"aws:useragent": "AWS-CLI"}}, {"aws:useragent": ["aws-cli"]},
     True),
    ("StringEqualsIgnoreCase still needs the same text",
     {"StringEqualsIgnoreCase": {"aws:useragent": "AWS-CLI"}}, {"aws:useragent": ["boto"]},
     False),
    ("StringNotEqualsIgnoreCase fails on a value differing only in case",
     {"StringNotEqualsIgnoreCase": {"aws:useragent": "AWS-CLI"}},
     {"aws:useragent": ["aws-cli"]}, False),
    ("StringNotEqualsIgnoreCase holds for another value",
     {"StringNotEqualsIgnoreCase": {"aws:useragent": "AWS-CLI"}}, {"aws:useragent": ["boto"]},
     True),
    ("StringLike matches a star pattern",
     {"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": ["home/alice/"]}, True),
    ("StringLike matches a question mark pattern",
     {"StringLike": {"s3:prefix": "v?/"}}, {"s3:prefix": ["v2/"]}, True),
    ("StringLike fails outside the pattern",
     {"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": ["etc/"]}, False),
    ("StringNotLike fails inside the pattern",
     {"StringNotLike": {"aws:referer": "https://example.com/*"}},
     {"aws:referer": ["https://example.com/page"]}, False),
    ("StringNotLike holds outside the pattern",
     {"StringNotLike": {"aws:referer": "https://example.com/*"}},
     {"aws:referer": ["https://evil.example/"]}, True),
    ("a policy variable is matched literally",
     {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
     {"s3:prefix": ["home/${aws:username}/x"]}, True),
    ("a policy variable is not expanded",
     {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, {"s3:prefix": ["home/alice/x"]},
     False),
    # Numeric
    ("NumericLessThanEquals holds at the limit",
     {"NumericLessThanEquals": {"s3:max-keys": "100"}}, {"s3:max-keys": ["100"]}, True),
    ("NumericLessThanEquals fails above the limit",
     {"NumericLessThanEquals": {"s3:max-keys": 100}}, {"s3:max-keys": ["101"]}, False),
    ("NumericLessThan fails at the limit",
     {"NumericLessThan": {"s3:max-keys": "100"}}, {"s3:max-keys": ["100"]}, False),
    ("NumericGreaterThan holds above the limit",
     {"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3:max-keys": ["11"]}, True),
    ("NumericGreaterThanEquals fails below the limit",
     {"NumericGreaterThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": ["9"]}, False),
    ("NumericEquals compares numbers not text",
     {"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": ["10.0"]}, True),
    ("NumericNotEquals fails on an equal number",
     {"NumericNotEquals": {"s3:max-keys": ["10", "20"]}}, {"s3:max-keys": ["20"]}, False),
    ("NumericNotEquals holds on another number",
     {"NumericNotEquals": {"s3:max-keys": ["10", "20"]}}, {"s3:max-keys": ["30"]}, True),
    ("a request value that is not a number matches no Numeric operator",
     {"NumericLessThan": {"s3:max-keys": "100"}}, {"s3:max-keys": ["lots"]}, False),
    # Date
    ("DateLessThan holds before an ISO 8601 date",
     {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
     {"aws:currenttime": ["2029-12-31T23:59:59Z"]}, True),
    ("DateLessThan fails after an ISO 8601 date",
     {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
     {"aws:currenttime": ["2030-01-01T00:00:01Z"]}, False),
    ("DateGreaterThan compares epoch seconds with an ISO date",
     {"DateGreaterThan": {"aws:EpochTime": "2020-01-01"}},
     {"aws:epochtime": ["1577836801"]}, True),
    ("DateGreaterThanEquals compares an ISO time with epoch seconds",
     {"DateGreaterThanEquals": {"aws:CurrentTime": 1893456000}},
     {"aws:currenttime": ["2029-12-31T00:00:00Z"]}, False),
    ("DateEquals understands time zone offsets",
     {"DateEquals": {"aws:CurrentTime": "2030-01-01T01:00:00+01:00"}},
     {"aws:currenttime": ["2030-01-01T00:00:00Z"]}, True),
    ("DateNotEquals fails on the same instant",
     {"DateNotEquals": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
     {"aws:currenttime": ["1893456000"]}, False),
    ("DateLessThanEquals holds at the instant",
     {"DateLessThanEquals": {"aws:EpochTime": "1893456000"}},
     {"aws:epochtime": ["1893456000"]}, True),
    # Bool
    ("Bool false matches an insecure request",
     {"Bool": {"aws:SecureTransport": "false"}}, {"aws:securetransport": ["false"]}, True),
    ("Bool false does not match a TLS request",
     {"Bool": {"aws:SecureTransport": "false"}}, {"aws:securetransport": ["true"]}, False),
    ("Bool accepts a JSON boolean",
     {"Bool": {"aws:SecureTransport": True}}, {"aws:securetransport": ["true"]}, True),
    # IP addresses
    ("IpAddress matches an IPv4 address in the CIDR",
     {"IpAddress": {"aws:SourceIp": IP4}}, {"aws:sourceip": ["203.0.113.9"]}, True),
    ("IpAddress fails for an IPv4 address outside the CIDR",
     {"IpAddress": {"aws:SourceIp": IP4}}, {"aws:sourceip": ["198.51.100.9"]}, False),
    ("IpAddress matches an IPv6 address in the CIDR",
     {"IpAddress": {"aws:SourceIp": [IP4, IP6]}}, {"aws:sourceip": ["2001:db8:1234:5::1"]},
     True),
    ("IpAddress fails for an IPv6 address outside the CIDR",
     {"IpAddress": {"aws:SourceIp": IP6}}, {"aws:sourceip": ["2001:db8:9999::1"]}, False),
    ("IpAddress does not mix IPv4 and IPv6",
     {"IpAddress": {"aws:SourceIp": "::/0"}}, {"aws:sourceip": ["203.0.113.9"]}, False),
    ("IpAddress reads an IPv4-mapped IPv6 address as IPv4",
     {"IpAddress": {"aws:SourceIp": IP4}}, {"aws:sourceip": ["::ffff:203.0.113.9"]}, True),
    ("IpAddress accepts a single address",
     {"IpAddress": {"aws:SourceIp": "203.0.113.9"}}, {"aws:sourceip": ["203.0.113.9"]}, True),
    ("NotIpAddress fails inside the CIDR",
     {"NotIpAddress": {"aws:SourceIp": [IP4, IP6]}}, {"aws:sourceip": ["203.0.113.9"]}, False),
    ("NotIpAddress holds outside the CIDR",
     {"NotIpAddress": {"aws:SourceIp": [IP4, IP6]}}, {"aws:sourceip": ["192.0.2.1"]}, True),
    # ARNs
    ("ArnLike matches a wildcard in the resource part",
     {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::logs-*"}},
     {"aws:sourcearn": ["arn:aws:s3:::logs-eu"]}, True),
    ("ArnEquals also takes wildcards",
     {"ArnEquals": {"aws:SourceArn": "arn:aws:iam::*:role/ci"}},
     {"aws:sourcearn": ["arn:aws:iam::123:role/ci"]}, True),
    ("an ARN wildcard does not cross a colon between segments",
     {"ArnLike": {"aws:SourceArn": "arn:aws:iam::*:role/ci"}},
     {"aws:sourcearn": ["arn:aws:iam::1:2:role/ci"]}, False),
    ("ArnNotLike fails on a matching ARN",
     {"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::logs-*"}},
     {"aws:sourcearn": ["arn:aws:s3:::logs-eu"]}, False),
    ("ArnNotEquals holds on another ARN",
     {"ArnNotEquals": {"aws:SourceArn": "arn:aws:s3:::logs"}},
     {"aws:sourcearn": ["arn:aws:s3:::other"]}, True),
    # Binary
    ("BinaryEquals compares base64 text exactly",
     {"BinaryEquals": {"s3:x-amz-acl": "QmluYXJ5"}}, {"s3:x-amz-acl": ["QmluYXJ5"]}, True),
    # Null
    ("Null true holds when the key is absent",
     {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "true"}}, {}, True),
    ("Null true fails when the key is present",
     {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "true"}},
     {"s3:x-amz-server-side-encryption-customer-algorithm": ["AES256"]}, False),
    ("Null false holds when the key is present",
     {"Null": {"s3:VersionId": False}}, {"s3:versionid": ["v1"]}, True),
    ("Null false fails when the key is absent",
     {"Null": {"s3:VersionId": "false"}}, {}, False),
    # Missing keys
    ("a missing key makes a positive operator false",
     {"StringEquals": {"s3:prefix": "home/"}}, {}, False),
    ("a missing key makes StringNotEquals true",
     {"StringNotEquals": {"s3:prefix": "home/"}}, {}, True),
    ("a missing key makes NotIpAddress true",
     {"NotIpAddress": {"aws:SourceIp": IP4}}, {}, True),
    ("a missing key makes ArnNotLike true",
     {"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::x"}}, {}, True),
    ("a missing key makes NumericLessThan false",
     {"NumericLessThan": {"s3:max-keys": "100"}}, {}, False),
    # IfExists
    ("IfExists holds when the key is missing",
     {"StringEqualsIfExists": {"s3:x-amz-acl": "private"}}, {}, True),
    ("IfExists tests the key when it is present",
     {"StringEqualsIfExists": {"s3:x-amz-acl": "private"}}, {"s3:x-amz-acl": ["public-read"]},
     False),
    ("NumericLessThanEqualsIfExists holds when the key is missing",
     {"NumericLessThanEqualsIfExists": {"s3:max-keys": "10"}}, {}, True),
    ("NumericLessThanEqualsIfExists fails above the limit",
     {"NumericLessThanEqualsIfExists": {"s3:max-keys": "10"}}, {"s3:max-keys": ["11"]}, False),
    # Set qualifiers over several request values
    ("ForAnyValue holds when one request value matches",
     {"ForAnyValue:StringEquals": {"s3:ExistingObjectTag/team": ["red", "blue"]}},
     {"s3:existingobjecttag/team": ["green", "blue"]}, True),
    ("ForAnyValue fails when no request value matches",
     {"ForAnyValue:StringEquals": {"s3:ExistingObjectTag/team": ["red", "blue"]}},
     {"s3:existingobjecttag/team": ["green"]}, False),
    ("ForAnyValue fails when the key is missing",
     {"ForAnyValue:StringEquals": {"s3:ExistingObjectTag/team": "red"}}, {}, False),
    ("ForAllValues holds when every request value matches",
     {"ForAllValues:StringLike": {"s3:prefix": ["public/*", "shared/*"]}},
     {"s3:prefix": ["public/a", "shared/b"]}, True),
    ("ForAllValues fails when one request value does not match",
     {"ForAllValues:StringLike": {"s3:prefix": ["public/*"]}},
     {"s3:prefix": ["public/a", "private/b"]}, False),
    ("ForAllValues holds when the key is missing",
     {"ForAllValues:StringEquals": {"s3:prefix": "public/"}}, {}, True),
    ("ForAllValues with a negated operator needs every value outside the list",
     {"ForAllValues:StringNotLike": {"s3:prefix": "key1*"}}, {"s3:prefix": ["key2", "key3"]},
     True),
    ("ForAllValues with a negated operator fails on one value inside the list",
     {"ForAllValues:StringNotLike": {"s3:prefix": "key1*"}}, {"s3:prefix": ["key2", "key1a"]},
     False),
    ("ForAnyValue with a negated operator holds when one value is outside the list",
     {"ForAnyValue:StringNotEquals": {"s3:prefix": ["a", "b"]}}, {"s3:prefix": ["a", "c"]},
     True),
    ("qualifiers are case-insensitive",
     {"forallvalues:stringequals": {"s3:prefix": "a"}}, {"s3:prefix": ["a"]}, True),
    # AND across keys and operators
    ("several keys in one operator are ANDed",
     {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}},
     {"s3:prefix": ["a"], "s3:delimiter": ["|"]}, False),
    ("several keys in one operator all holding hold",
     {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}},
     {"s3:prefix": ["a"], "s3:delimiter": ["/"]}, True),
    ("several operators are ANDed",
     {"StringEquals": {"s3:prefix": "a"}, "Bool": {"aws:SecureTransport": "true"}},
     {"s3:prefix": ["a"], "aws:securetransport": ["false"]}, False),
    ("several operators all holding hold",
     {"StringEquals": {"s3:prefix": "a"}, "Bool": {"aws:SecureTransport": "true"}},
     {"s3:prefix": ["a"], "aws:securetransport": ["true"]}, True),
    ("an operator name is case-insensitive",
     {"stringequals": {"s3:prefix": "a"}}, {"s3:prefix": ["a"]}, True),
]


@pytest.mark.parametrize(("condition", "context", "holds"),
                         [pytest.param(*case[1:], id=case[0]) for case in CONDITION_CASES])
def test_condition_operators(
    condition: dict[str, Any], context: dict[str, list[str]], holds: bool
) -> None:
    allow = parse(stmt(action="s3:*", resource=ALL, condition=condition))
    assert allow.evaluate(facts(context=context)) is (ALLOW if holds else NONE)
    # The same condition on a Deny denies exactly when it holds.
    deny = parse(stmt(action="s3:*", resource=ALL),
                 stmt("Deny", action="s3:*", resource=ALL, condition=condition))
    assert deny.evaluate(facts(context=context)) is (DENY if holds else ALLOW)


def test_a_bare_string_context_value_is_one_value() -> None:
    p = parse(stmt(condition={"StringEquals": {"aws:referer": "https://a.example/"}}))
    assert p.evaluate(facts(context={"aws:referer": "https://a.example/"})) is ALLOW


# --------------------------------------------------------------------------------------------
# Whole policies
# --------------------------------------------------------------------------------------------

CROSS_ACCOUNT = [
    stmt(principal={"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"}, action="s3:GetObject",
         resource="arn:aws:s3:::bkt/public/*", Sid="ReadPublic"),
    stmt(principal={"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"}, action="s3:ListBucket",
         resource="arn:aws:s3:::bkt", condition={"StringLike": {"s3:prefix": "public/*"}},
         Sid="ListPublic"),
]


@pytest.mark.parametrize(("request_", "expected"), [
    pytest.param(facts(key="public/a.txt"), ALLOW, id="account B reads a public object"),
    pytest.param(facts(key="private/a.txt"), NONE, id="account B gets nothing outside public"),
    pytest.param(facts(key="public/a.txt", who=["444455556666"]), NONE,
                 id="another account gets nothing"),
    pytest.param(facts(key="public/a.txt", who=None), NONE, id="anonymous gets nothing"),
    pytest.param(facts("s3:PutObject", key="public/a.txt"), NONE,
                 id="account B cannot write a public object"),
    pytest.param(facts("s3:ListBucket", key=None, context={"s3:prefix": ["public/"]}), ALLOW,
                 id="account B lists under public"),
    pytest.param(facts("s3:ListBucket", key=None, context={"s3:prefix": ["private/"]}), NONE,
                 id="account B cannot list under private"),
    pytest.param(facts("s3:ListBucket", key=None), NONE,
                 id="account B cannot list the whole bucket"),
])
def test_prefix_scoped_grant_to_another_account(request_: RequestFacts, expected: Decision) -> None:
    assert parse(*CROSS_ACCOUNT).evaluate(request_) is expected


SOURCE_IP_AND_REFERER = [
    stmt(action="s3:GetObject", Sid="PublicRead"),
    stmt("Deny", action="s3:*", resource=ALL, Sid="DenyBadNetwork",
         condition={"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8:bad::/48"]}}),
    stmt("Deny", action="s3:GetObject", Sid="DenyHotlinks",
         condition={"StringNotLike": {"aws:Referer": ["https://example.com/*"]}}),
]


@pytest.mark.parametrize(("context", "expected"), [
    pytest.param({"aws:sourceip": ["198.51.100.1"], "aws:referer": ["https://example.com/p"]},
                 ALLOW, id="a good network with our referer reads"),
    pytest.param({"aws:sourceip": ["192.0.2.77"], "aws:referer": ["https://example.com/p"]},
                 DENY, id="a request from a denied IPv4 network is denied"),
    pytest.param({"aws:sourceip": ["2001:db8:bad::1"], "aws:referer": ["https://example.com/"]},
                 DENY, id="a request from a denied IPv6 network is denied"),
    pytest.param({"aws:sourceip": ["198.51.100.1"], "aws:referer": ["https://evil.example/"]},
                 DENY, id="a request with a foreign referer is denied"),
    pytest.param({"aws:sourceip": ["198.51.100.1"]}, DENY,
                 id="a request without a referer is denied"),
])
def test_deny_by_source_ip_and_referer(context: dict[str, list[str]], expected: Decision) -> None:
    p = parse(*SOURCE_IP_AND_REFERER)
    assert p.evaluate(facts(who=None, context=context)) is expected


def test_deny_insecure_transport_beats_an_allow_for_everyone() -> None:
    p = parse(stmt(action="s3:*", resource=ALL),
              stmt("Deny", action="s3:*", resource=ALL,
                   condition={"Bool": {"aws:SecureTransport": "false"}}))
    assert p.evaluate(facts(context={"aws:securetransport": ["false"]})) is DENY
    assert p.evaluate(facts(context={"aws:securetransport": ["true"]})) is ALLOW


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def big_policy(pretty: bool, statements: int) -> bytes:
    body = {"Version": "2012-10-17", "Statement": [
        stmt(Sid=f"S{i}", resource=f"arn:aws:s3:::bkt/prefix-number-{i:05d}/*")
        for i in range(statements)]}
    return json.dumps(body, indent=8 if pretty else None,
                      separators=None if pretty else (",", ":")).encode()


MALFORMED = [
    ("bad JSON is refused", b'{"Version": "2012-10-17", "Statement": [', "invalid Json"),
    ("a document not starting with a brace is refused", b' {"Statement": []}',
     "first byte must be '{'"),
    ("a JSON array is refused", b"[]", "first byte must be '{'"),
    ("a document that is not UTF-8 is refused", b'{"Sid": "\xff"}', "invalid Json"),
    ("a missing Statement is refused", doc(Statement=None), "Missing required field Statement"),
    ("an empty Statement is refused", doc(), "Statement is empty"),
    ("an unknown top-level field is refused", doc(stmt(), Extra=1), "Unknown field Extra"),
    ("an unknown version is refused", doc(stmt(), Version="2020-01-01"),
     "invalid version: 2020-01-01"),
    ("a version that is not a string is refused", doc(stmt(), Version=["2012-10-17"]),
     "invalid version"),
    ("deeply nested JSON is refused", b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
     "invalid Json"),
    ("a statement that is not an object is refused", doc("nope"), "statement 1"),  # type: ignore[arg-type]
    ("a missing Effect is refused", doc(stmt(effect=None)), "Missing required field Effect"),  # type: ignore[arg-type]
    ("a bad Effect is refused", doc(stmt(effect="Alow")), "Invalid effect: Alow"),
    ("a lower-case Effect is refused", doc(stmt(effect="allow")), "Invalid effect: allow"),
    ("a missing Principal is refused", doc(stmt(principal=None)),
     "Missing required field Principal"),
    ("a missing Action is refused", doc(stmt(action=None)), "Missing required field Action"),
    ("a missing Resource is refused", doc(stmt(resource=None)),
     "Missing required field Resource"),
    ("Action with NotAction is refused", doc(stmt(NotAction="s3:PutObject")),
     "both Action and NotAction"),
    ("an unknown statement field is refused", doc(stmt(Effects="Allow")),
     "Unknown field Effects"),
    ("an unknown action is refused", doc(stmt(action="s3:GetObjects")),
     "Policy has invalid action: s3:GetObjects"),
    ("an action of another service is refused", doc(stmt(action="ec2:RunInstances")),
     "Policy has invalid action"),
    ("an action without a service is refused", doc(stmt(action="GetObject")),
     "Policy has invalid action"),
    ("an empty action list is refused", doc(stmt(action=[])), "Action must be"),
    ("a resource in another bucket is refused",
     doc(stmt(resource="arn:aws:s3:::other-bucket/*")), "Policy has invalid resource"),
    ("a resource in a bucket sharing a prefix is refused",
     doc(stmt(resource="arn:aws:s3:::bkt2/*")), "Policy has invalid resource"),
    ("a resource that is not an ARN is refused", doc(stmt(resource="bkt/*")),
     "Policy has invalid resource"),
    ("a bucket action on object resources is refused",
     doc(stmt(action=["s3:GetObject", "s3:ListBucket"])),
     "Action does not apply to any resource(s) in statement: s3:ListBucket"),
    ("an object action on the bucket resource is refused",
     doc(stmt(resource="arn:aws:s3:::bkt")), "Action does not apply"),
    ("an account action on a bucket resource is refused",
     doc(stmt(action="s3:ListAllMyBuckets", resource="arn:aws:s3:::bkt")),
     "Action does not apply"),
    ("a principal string other than star is refused", doc(stmt(principal=ACCOUNT_B)),
     "Invalid principal in policy"),
    ("an unknown principal type is refused", doc(stmt(principal={"Federated": "x"})),
     "Invalid principal in policy"),
    ("a wildcard inside a principal is refused",
     doc(stmt(principal={"AWS": "arn:aws:iam::*:root"})), "Invalid principal in policy"),
    ("a principal ARN of another kind is refused",
     doc(stmt(principal={"AWS": "arn:aws:sts::1:assumed-role/r/s"})),
     "Invalid principal in policy"),
    ("an unknown condition operator is refused",
     doc(stmt(condition={"StringEqualz": {"s3:prefix": "a"}})),
     "Invalid Condition operator: StringEqualz"),
    ("an unknown set qualifier is refused",
     doc(stmt(condition={"ForSomeValues:StringEquals": {"s3:prefix": "a"}})),
     "Invalid Condition operator"),
    ("Null with IfExists is refused",
     doc(stmt(condition={"NullIfExists": {"s3:prefix": "true"}})), "Invalid Condition operator"),
    ("a condition that is not an object is refused", doc(stmt(condition=["x"])),  # type: ignore[arg-type]
     "Condition must be an object"),
    ("a condition operator without keys is refused",
     doc(stmt(condition={"StringEquals": {}})), "must map keys to values"),
    ("an empty list of condition values is refused",
     doc(stmt(condition={"StringEquals": {"s3:prefix": []}})), "must not be empty"),
    ("a nested condition value is refused",
     doc(stmt(condition={"StringEquals": {"s3:prefix": {"a": 1}}})), "Condition values"),
    ("a bad CIDR is refused",
     doc(stmt(condition={"IpAddress": {"aws:SourceIp": "300.1.2.0/24"}})),
     "Invalid IP address in Condition: 300.1.2.0/24"),
    ("a bad date is refused",
     doc(stmt(condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})),
     "Invalid Date value"),
    ("a bad number is refused",
     doc(stmt(condition={"NumericLessThan": {"s3:max-keys": "ten"}})), "Invalid Numeric value"),
    ("a bad Bool is refused",
     doc(stmt(condition={"Bool": {"aws:SecureTransport": "yes"}})), "Invalid Bool value"),
    ("a bad Null is refused", doc(stmt(condition={"Null": {"s3:prefix": "maybe"}})),
     "Invalid Null value"),
    ("a policy over 20 KB is refused", big_policy(pretty=False, statements=250),
     "Policies must be less than 20 KB"),
    ("a huge pretty-printed policy is refused unparsed", b"{" + b" " * 300_000 + b"}",
     "Policies must be less than 20 KB"),
]


@pytest.mark.parametrize(("document", "message"),
                         [pytest.param(*case[1:], id=case[0]) for case in MALFORMED])
def test_malformed_policies_are_refused(document: bytes, message: str) -> None:
    with pytest.raises(errors.MalformedPolicy) as caught:
        BucketPolicy.parse(document, BUCKET)
    assert caught.value.status == 400
    assert caught.value.code == "MalformedPolicy"
    assert message in caught.value.message


def test_an_error_names_the_statement_and_its_sid() -> None:
    with pytest.raises(errors.MalformedPolicy) as caught:
        parse(stmt(), stmt(effect="Maybe", Sid="Second"))
    assert caught.value.message == 'Invalid effect: Maybe (statement 2, Sid "Second")'


def test_a_condition_error_names_the_operator_and_key() -> None:
    with pytest.raises(errors.MalformedPolicy) as caught:
        parse(stmt(condition={"IpAddress": {"aws:SourceIp": "nope"}}))
    assert "(statement 1, Condition IpAddress aws:SourceIp)" in caught.value.message


ACCEPTED = [
    ("a single statement object is accepted",
     json.dumps({"Statement": stmt()}).encode()),
    ("the 2008 version is accepted", doc(stmt(), Version="2008-10-17")),
    ("a missing version is accepted", doc(stmt(), Version=None)),
    ("an Id is accepted", doc(stmt(), Id="PolicyId1")),
    ("a Sid is optional", doc(stmt(), stmt(Sid="Named"))),
    ("a star resource is accepted", doc(stmt(resource="*"))),
    ("a bucket-name wildcard covering the bucket is accepted",
     doc(stmt(action="s3:*", resource="arn:aws:s3:::b*"))),
    ("s3 star with both resources is accepted", doc(stmt(action="s3:*", resource=ALL))),
    ("a wildcard action matching some resource is accepted",
     doc(stmt(action="s3:Get*", resource="arn:aws:s3:::bkt"))),
    ("a wildcard action matching no known action is accepted",
     doc(stmt(action="s3:FutureThing*"))),
    ("NotAction skips the resource check", doc(stmt(action=None, NotAction="s3:ListBucket"))),
    ("a policy variable is accepted",
     doc(stmt(action="s3:ListBucket", resource="arn:aws:s3:::bkt",
              condition={"StringLike": {"s3:prefix": "home/${aws:username}/*"}}))),
    ("an unknown condition key is accepted",
     doc(stmt(condition={"StringEquals": {"custom:thing": "x"}}))),
    ("numbers and booleans as condition values are accepted",
     doc(stmt(condition={"NumericLessThan": {"s3:max-keys": 5}, "Bool": {"aws:x": False}}))),
    ("a pretty-printed policy is measured without whitespace",
     big_policy(pretty=True, statements=120)),
]


@pytest.mark.parametrize("document", [pytest.param(d, id=name) for name, d in ACCEPTED])
def test_valid_policies_are_accepted(document: bytes) -> None:
    assert isinstance(BucketPolicy.parse(document, BUCKET), BucketPolicy)


def test_the_size_cases_straddle_the_limit() -> None:
    # Guards the two size cases above against drifting to the same side of 20 KB.
    assert len(big_policy(pretty=True, statements=120)) > policy.MAX_POLICY_SIZE
    assert len(big_policy(pretty=False, statements=120)) < policy.MAX_POLICY_SIZE


# --------------------------------------------------------------------------------------------
# Public access (GetBucketPolicyStatus)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("statements", "public"), [
    pytest.param([stmt()], True, id="an allow to star is public"),
    pytest.param([stmt(principal={"AWS": "*"})], True, id="an allow to AWS star is public"),
    pytest.param([stmt(principal={"AWS": ACCOUNT_B})], False,
                 id="an allow to one account is not public"),
    pytest.param([stmt("Deny")], False, id="a deny to star is not public"),
    pytest.param([stmt(principal=None, NotPrincipal={"AWS": ACCOUNT_B})], True,
                 id="an allow with NotPrincipal is public"),
    pytest.param([stmt(condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})], False,
                 id="an allow limited to a CIDR is not public"),
    pytest.param([stmt(condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}})], True,
                 id="an allow limited to a very wide CIDR is public"),
    pytest.param([stmt(condition={"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}})], True,
                 id="an allow excluding a CIDR is public"),
    pytest.param([stmt(condition={"IpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}})],
                 True, id="an allow limited to a CIDR only if present is public"),
    pytest.param([stmt(condition={"StringLike": {"aws:Referer": "https://example.com/*"}})],
                 True, id="an allow limited by referer is still public"),
    pytest.param([stmt(condition={"StringEquals": {"aws:SourceVpce": "vpce-1a2b"}})], False,
                 id="an allow limited to a fixed VPC endpoint is not public"),
    pytest.param([stmt(condition={"StringLike": {"aws:SourceVpce": "vpce-*"}})], True,
                 id="an allow limited to a wildcard VPC endpoint is public"),
    pytest.param([stmt(condition={"StringLike": {"aws:userid": "AROAEXAMPLE:*"}})], False,
                 id="an allow limited to one role's sessions is not public"),
    pytest.param([stmt(principal={"AWS": ACCOUNT_B}), stmt(action="s3:GetObject")], True,
                 id="one public statement makes the policy public"),
])
def test_grants_public_access(statements: list[dict[str, Any]], public: bool) -> None:
    assert parse(*statements).grants_public_access() is public


# --------------------------------------------------------------------------------------------
# Operation -> action table
# --------------------------------------------------------------------------------------------

def test_every_registry_operation_has_an_action() -> None:
    assert set(ALL_OPERATIONS) - set(ACTIONS) == set()
    assert set(ACTIONS) - set(ALL_OPERATIONS) == set()


@pytest.mark.parametrize(("operation", "action"), [
    ("GetObject", "s3:GetObject"), ("HeadObject", "s3:GetObject"),
    ("ListObjectsV2", "s3:ListBucket"), ("ListObjects", "s3:ListBucket"),
    ("HeadBucket", "s3:ListBucket"), ("ListObjectVersions", "s3:ListBucketVersions"),
    ("UploadPart", "s3:PutObject"), ("CopyObject", "s3:PutObject"),
    ("ListMultipartUploads", "s3:ListBucketMultipartUploads"),
    ("ListParts", "s3:ListMultipartUploadParts"),
    ("AbortMultipartUpload", "s3:AbortMultipartUpload"), ("DeleteObjects", "s3:DeleteObject"),
    ("GetObjectTagging", "s3:GetObjectTagging"), ("PutBucketPolicy", "s3:PutBucketPolicy"),
    ("DeleteBucketCors", "s3:PutBucketCORS"), ("ListBuckets", "s3:ListAllMyBuckets"),
])
def test_operations_map_to_the_documented_action(operation: str, action: str) -> None:
    assert ACTIONS[operation] == action


def test_every_s3_action_in_the_tables_is_a_valid_policy_action() -> None:
    s3_actions = sorted({a for a in [*ACTIONS.values(), *policy.VERSIONED_ACTIONS.values()]
                         if a.startswith("s3:")})
    # Parsing refuses unknown actions, so this checks every table entry at once.
    BucketPolicy.parse(doc(stmt(action=s3_actions, resource="*")), BUCKET)


def test_evaluation_does_no_json_work(monkeypatch: pytest.MonkeyPatch) -> None:
    p = parse(*SOURCE_IP_AND_REFERER, *CROSS_ACCOUNT)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("JSON parsed during evaluation")

    monkeypatch.setattr(json, "loads", refuse)
    request = facts(key="public/a", context={"aws:referer": ["https://example.com/"],
                                             "aws:sourceip": ["198.51.100.1"]})
    for _ in range(100):
        assert p.evaluate(request) is ALLOW

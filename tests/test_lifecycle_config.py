"""Bucket lifecycle configuration: the API through the real server, S3's validation of the
document, and the pure timing helpers the headers and the lifecycle worker use.

Expected errors are S3's as recorded against AWS (ceph s3-tests' lifecycle tests, S3's
error-response table and other S3 implementations' recorded answers); what Spaces does not
support (tag and size filters, transitions) is refused with 501 NotImplemented.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cargohold import lifecycle
from cargohold.lifecycle import (
    LifecycleConfig,
    LifecycleRule,
    expiration_header,
    expiry_time,
)
from tests import rawhttp
from tests.conftest import ServerProcess
from tests.test_buckets import error_code, status

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DAY = 86400.0

RICH_RULES: list[dict[str, Any]] = [
    {"ID": "logs expire", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
     "Expiration": {"Days": 30}},
    {"ID": "tmp by date", "Filter": {"And": {"Prefix": "tmp/"}}, "Status": "Enabled",
     "Expiration": {"Date": datetime(2030, 1, 1, tzinfo=UTC)}},
    {"ID": "markers", "Filter": {}, "Status": "Disabled",
     "Expiration": {"ExpiredObjectDeleteMarker": True},
     "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 3}},
    {"ID": "uploads", "Filter": {"Prefix": ""}, "Status": "Enabled",
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
]
GOOD_RULES: list[dict[str, Any]] = [
    {"ID": "good", "Filter": {"Prefix": "keep/"}, "Status": "Enabled",
     "Expiration": {"Days": 5}},
]


def document(*rules: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration xmlns="{NS}">'
            + "".join(rules) + "</LifecycleConfiguration>").encode()


def rule(inner: str, rule_id: str = "r", filter_: str = "<Filter><Prefix>a/</Prefix></Filter>",
         status_: str = "<Status>Enabled</Status>") -> str:
    id_element = f"<ID>{rule_id}</ID>" if rule_id else ""
    return f"<Rule>{id_element}{filter_}{status_}{inner}</Rule>"


EXPIRE = "<Expiration><Days>1</Days></Expiration>"
ABORT = ("<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
         "</AbortIncompleteMultipartUpload>")
TAG = "<Tag><Key>k</Key><Value>v</Value></Tag>"


def put_raw(server: ServerProcess, bucket: str, body: bytes,
            headers: dict[str, str] | None = None) -> rawhttp.Response:
    url = f"{server.endpoint}/{bucket}?lifecycle"
    return rawhttp.send("PUT", url, rawhttp.sign_v4("PUT", url, headers, body=body), body)


def code_of(response: rawhttp.Response) -> str:
    start = response.body.index(b"<Code>") + len(b"<Code>")
    return response.body[start:response.body.index(b"</Code>")].decode()


def rules_of(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return list(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])


def put_rules(s3: Any, bucket: str, rules: list[dict[str, Any]]) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={"Rules": rules})


def at(text: str) -> float:
    """Unix time of an ISO 8601 UTC time such as ``2014-01-15T10:30:00``."""
    return float(calendar.timegm(datetime.fromisoformat(text).timetuple()))


# --- the API ---


def test_a_rich_configuration_round_trips_unchanged(s3: Any, bucket: str) -> None:
    put_rules(s3, bucket, RICH_RULES)
    assert rules_of(s3, bucket) == RICH_RULES


def test_legacy_top_level_prefix_rules_round_trip_in_their_own_shape(s3: Any,
                                                                     bucket: str) -> None:
    rules = [
        {"ID": "one", "Prefix": "one/", "Status": "Enabled", "Expiration": {"Days": 1}},
        {"ID": "two", "Prefix": "two/", "Status": "Enabled",
         "NoncurrentVersionExpiration": {"NoncurrentDays": 4}},
    ]
    put_rules(s3, bucket, rules)
    assert rules_of(s3, bucket) == rules


def test_a_bucket_without_a_configuration_answers_no_such_lifecycle_configuration(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(exc) == "NoSuchLifecycleConfiguration" and status(exc) == 404
    assert exc.value.response["Error"]["Message"] == "The lifecycle configuration does not exist"
    url = f"{server.endpoint}/{bucket}?lifecycle"
    raw = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url))
    assert raw.status == 404
    assert f"<BucketName>{bucket}</BucketName>".encode() in raw.body


def test_delete_answers_204_and_a_later_get_finds_nothing(server: ServerProcess, s3: Any,
                                                         bucket: str) -> None:
    put_rules(s3, bucket, GOOD_RULES)
    url = f"{server.endpoint}/{bucket}?lifecycle"
    deleted = rawhttp.send("DELETE", url, rawhttp.sign_v4("DELETE", url))
    assert deleted.status == 204
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(exc) == "NoSuchLifecycleConfiguration" and status(exc) == 404
    s3.delete_bucket_lifecycle(Bucket=bucket)  # deleting nothing is fine too


def test_a_new_configuration_replaces_the_old_one_whole(s3: Any, bucket: str) -> None:
    put_rules(s3, bucket, RICH_RULES)
    put_rules(s3, bucket, GOOD_RULES)
    assert rules_of(s3, bucket) == GOOD_RULES


def test_a_rule_without_an_id_gets_a_generated_one(server: ServerProcess, s3: Any,
                                                   bucket: str) -> None:
    body = document(rule(EXPIRE, rule_id=""), rule(ABORT, rule_id="named",
                                                    filter_="<Filter><Prefix>b/</Prefix>"
                                                            "</Filter>"))
    assert put_raw(server, bucket, body).status == 200
    first, second = rules_of(s3, bucket)
    assert first["ID"] and len(first["ID"]) <= 255 and first["ID"] != "named"
    assert second["ID"] == "named"
    assert rules_of(s3, bucket)[0]["ID"] == first["ID"]  # generated once, then kept


def test_a_missing_bucket_answers_no_such_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as exc:
        put_rules(s3, "no-such-bucket-for-lifecycle", GOOD_RULES)
    assert error_code(exc) == "NoSuchBucket"


# --- what S3 refuses, and that a refusal changes nothing ---

INVALID: list[tuple[str, bytes, str, int]] = [
    ("not well-formed", b"<LifecycleConfiguration><Rule>", "MalformedXML", 400),
    ("another root", b"<Lifecycle><Rule/></Lifecycle>", "MalformedXML", 400),
    ("no rule", document(), "InvalidRequest", 400),
    ("too many rules", document(*(rule(EXPIRE, rule_id=f"r{i}",
                                       filter_=f"<Filter><Prefix>{i}/</Prefix></Filter>")
                                  for i in range(1001))), "InvalidRequest", 400),
    ("unknown element", document(rule(EXPIRE + "<Colour>red</Colour>")), "MalformedXML", 400),
    ("two expirations", document(rule(EXPIRE + EXPIRE)), "MalformedXML", 400),
    ("no action", document(rule("")), "InvalidRequest", 400),
    ("id too long", document(rule(EXPIRE, rule_id="a" * 256)), "InvalidArgument", 400),
    ("same id twice", document(rule(EXPIRE), rule(ABORT)), "InvalidArgument", 400),
    ("lower-case status", document(rule(EXPIRE, status_="<Status>enabled</Status>")),
     "MalformedXML", 400),
    ("no status", document(rule(EXPIRE, status_="")), "MalformedXML", 400),
    ("no filter or prefix", document(rule(EXPIRE, filter_="")), "MalformedXML", 400),
    ("zero days", document(rule("<Expiration><Days>0</Days></Expiration>")),
     "InvalidArgument", 400),
    ("negative days", document(rule("<Expiration><Days>-3</Days></Expiration>")),
     "InvalidArgument", 400),
    ("days not a number", document(rule("<Expiration><Days>soon</Days></Expiration>")),
     "MalformedXML", 400),
    ("zero noncurrent days", document(rule(
        "<NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays>"
        "</NoncurrentVersionExpiration>")), "InvalidArgument", 400),
    ("zero newer versions", document(rule(
        "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
        "<NewerNoncurrentVersions>0</NewerNoncurrentVersions>"
        "</NoncurrentVersionExpiration>")), "InvalidArgument", 400),
    ("noncurrent without days", document(rule(
        "<NoncurrentVersionExpiration><NewerNoncurrentVersions>2</NewerNoncurrentVersions>"
        "</NoncurrentVersionExpiration>")), "MalformedXML", 400),
    ("zero abort days", document(rule(
        "<AbortIncompleteMultipartUpload><DaysAfterInitiation>0</DaysAfterInitiation>"
        "</AbortIncompleteMultipartUpload>")), "InvalidArgument", 400),
    ("abort without days", document(rule(
        "<AbortIncompleteMultipartUpload></AbortIncompleteMultipartUpload>")),
     "MalformedXML", 400),
    ("empty expiration", document(rule("<Expiration></Expiration>")), "MalformedXML", 400),
    ("days and date", document(rule(
        "<Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>")),
     "MalformedXML", 400),
    ("days and delete marker", document(rule(
        "<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true"
        "</ExpiredObjectDeleteMarker></Expiration>")), "MalformedXML", 400),
    ("date and delete marker", document(rule(
        "<Expiration><Date>2030-01-01T00:00:00Z</Date><ExpiredObjectDeleteMarker>true"
        "</ExpiredObjectDeleteMarker></Expiration>")), "MalformedXML", 400),
    ("date not at midnight", document(rule(
        "<Expiration><Date>2030-01-01T12:00:00Z</Date></Expiration>")),
     "InvalidArgument", 400),
    ("date at midnight elsewhere", document(rule(
        "<Expiration><Date>2030-01-01T00:00:00+02:00</Date></Expiration>")),
     "InvalidArgument", 400),
    ("date without a time", document(rule(
        "<Expiration><Date>2030-01-01</Date></Expiration>")), "MalformedXML", 400),
    ("date not a date", document(rule(
        "<Expiration><Date>20200101</Date></Expiration>")), "MalformedXML", 400),
    ("filter with prefix and and", document(rule(EXPIRE, filter_=(
        "<Filter><Prefix>a/</Prefix><And><Prefix>b/</Prefix></And></Filter>"))),
     "MalformedXML", 400),
    ("filter with two prefixes", document(rule(EXPIRE, filter_=(
        "<Filter><Prefix>a/</Prefix><Prefix>b/</Prefix></Filter>"))), "MalformedXML", 400),
    ("empty and", document(rule(EXPIRE, filter_="<Filter><And></And></Filter>")),
     "MalformedXML", 400),
    ("filter and top-level prefix", document(rule(EXPIRE, filter_=(
        "<Filter><Prefix>a/</Prefix></Filter><Prefix>a/</Prefix>"))), "InvalidRequest", 400),
    ("filter in one rule, prefix in another", document(
        rule(EXPIRE, rule_id="v2"),
        rule(ABORT, rule_id="v1", filter_="<Prefix>b/</Prefix>")), "InvalidRequest", 400),
    ("newer versions without a filter", document(rule(
        "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
        "<NewerNoncurrentVersions>2</NewerNoncurrentVersions>"
        "</NoncurrentVersionExpiration>", filter_="<Prefix>a/</Prefix>")),
     "InvalidRequest", 400),
    ("overlapping top-level prefixes", document(
        rule(EXPIRE, rule_id="all", filter_="<Prefix></Prefix>"),
        rule(EXPIRE, rule_id="logs", filter_="<Prefix>logs/</Prefix>")),
     "InvalidRequest", 400),
    ("abort with a tag filter", document(rule(ABORT, filter_=f"<Filter>{TAG}</Filter>")),
     "InvalidRequest", 400),
    ("abort with prefix and tag", document(rule(ABORT, filter_=(
        f"<Filter><And><Prefix>a/</Prefix>{TAG}</And></Filter>"))), "InvalidRequest", 400),
    ("delete marker with a tag filter", document(rule(
        "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
        "</Expiration>", filter_=f"<Filter>{TAG}</Filter>")), "InvalidRequest", 400),
    ("abort with a size filter", document(rule(ABORT, filter_=(
        "<Filter><ObjectSizeLessThan>10</ObjectSizeLessThan></Filter>"))),
     "InvalidRequest", 400),
    ("a tag without a value", document(rule(EXPIRE, filter_=(
        "<Filter><Tag><Key>k</Key></Tag></Filter>"))), "MalformedXML", 400),
    ("a tag filter", document(rule(EXPIRE, filter_=f"<Filter>{TAG}</Filter>")),
     "NotImplemented", 501),
    ("prefix and tags", document(rule(EXPIRE, filter_=(
        f"<Filter><And><Prefix>a/</Prefix>{TAG}</And></Filter>"))), "NotImplemented", 501),
    ("a size filter", document(rule(EXPIRE, filter_=(
        "<Filter><ObjectSizeGreaterThan>1024</ObjectSizeGreaterThan></Filter>"))),
     "NotImplemented", 501),
    ("a transition", document(rule(
        "<Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>")),
     "NotImplemented", 501),
    ("a noncurrent transition", document(rule(
        "<NoncurrentVersionTransition><NoncurrentDays>30</NoncurrentDays>"
        "<StorageClass>GLACIER</StorageClass></NoncurrentVersionTransition>")),
     "NotImplemented", 501),
]


@pytest.mark.parametrize(("body", "code", "http_status"),
                         [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_an_invalid_document_is_refused_with_s3_s_error_and_changes_nothing(
        server: ServerProcess, s3: Any, bucket: str, body: bytes, code: str,
        http_status: int) -> None:
    put_rules(s3, bucket, GOOD_RULES)
    response = put_raw(server, bucket, body)
    assert (response.status, code_of(response)) == (http_status, code)
    assert rules_of(s3, bucket) == GOOD_RULES


def test_a_refused_document_does_not_create_a_configuration(server: ServerProcess, s3: Any,
                                                             bucket: str) -> None:
    response = put_raw(server, bucket, document(rule("")))
    assert (response.status, code_of(response)) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(exc) == "NoSuchLifecycleConfiguration"


def test_tag_filters_from_boto3_are_refused_as_not_implemented(s3: Any, bucket: str) -> None:
    put_rules(s3, bucket, GOOD_RULES)
    tagged = [{"ID": "t", "Filter": {"Tag": {"Key": "class", "Value": "temp"}},
               "Status": "Enabled", "Expiration": {"Days": 1}}]
    with pytest.raises(ClientError) as exc:
        put_rules(s3, bucket, tagged)
    assert error_code(exc) == "NotImplemented" and status(exc) == 501
    assert "tags" in exc.value.response["Error"]["Message"]
    assert rules_of(s3, bucket) == GOOD_RULES


@pytest.mark.parametrize(("error", "message"), [
    ("no action", lifecycle.NO_ACTION),
    ("days", lifecycle.EXPIRATION_DAYS),
    ("date", lifecycle.NOT_MIDNIGHT),
    ("same id", lifecycle.DUPLICATE_ID),
])
def test_refusals_carry_s3_s_messages(server: ServerProcess, bucket: str, error: str,
                                      message: str) -> None:
    bodies = {
        "no action": document(rule("")),
        "days": document(rule("<Expiration><Days>0</Days></Expiration>")),
        "date": document(rule("<Expiration><Date>2030-01-01T01:00:00Z</Date></Expiration>")),
        "same id": document(rule(EXPIRE), rule(ABORT)),
    }
    response = put_raw(server, bucket, bodies[error])
    assert f"<Message>{message}</Message>".encode() in response.body


def test_midnight_dates_are_accepted_with_or_without_milliseconds(server: ServerProcess,
                                                                  s3: Any,
                                                                  bucket: str) -> None:
    for text in ("2031-06-01T00:00:00Z", "2031-06-01T00:00:00.000Z",
                 "2031-06-01T02:00:00+02:00"):
        body = document(rule(f"<Expiration><Date>{text}</Date></Expiration>"))
        assert put_raw(server, bucket, body).status == 200, text
        expiration = rules_of(s3, bucket)[0]["Expiration"]
        assert expiration == {"Date": datetime(2031, 6, 1, tzinfo=UTC)}


def test_a_bad_content_md5_is_bad_digest_and_changes_nothing(server: ServerProcess, s3: Any,
                                                             bucket: str) -> None:
    put_rules(s3, bucket, GOOD_RULES)
    body = document(rule(EXPIRE, rule_id="new"))
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    response = put_raw(server, bucket, body, {"Content-MD5": wrong})
    assert (response.status, code_of(response)) == (400, "BadDigest")
    assert rules_of(s3, bucket) == GOOD_RULES
    right = base64.b64encode(hashlib.md5(body).digest()).decode()
    assert put_raw(server, bucket, body, {"Content-MD5": right}).status == 200
    assert [r["ID"] for r in rules_of(s3, bucket)] == ["new"]


def test_a_document_over_the_size_limit_is_malformed_xml(server: ServerProcess, s3: Any,
                                                         bucket: str) -> None:
    put_rules(s3, bucket, GOOD_RULES)
    padding = " " * lifecycle.MAX_DOCUMENT_SIZE
    body = document(rule(EXPIRE) + padding)
    response = put_raw(server, bucket, body)
    assert (response.status, code_of(response)) == (400, "MalformedXML")
    assert rules_of(s3, bucket) == GOOD_RULES


def test_a_thousand_rules_are_accepted(s3: Any, bucket: str) -> None:
    rules = [{"ID": f"r{i}", "Filter": {"Prefix": f"{i}/"}, "Status": "Enabled",
              "Expiration": {"Days": 1 + i}} for i in range(1000)]
    put_rules(s3, bucket, rules)
    assert rules_of(s3, bucket) == rules


# --- the timing helpers (pure) ---


def config(*rules: LifecycleRule) -> LifecycleConfig:
    return LifecycleConfig(rules)


def test_expiry_adds_the_days_and_rounds_up_to_the_next_midnight_utc() -> None:
    # AWS's own example: created 2014-01-15 10:30 UTC, 3 days -> 2014-01-19 00:00 UTC.
    assert expiry_time(at("2014-01-15T10:30:00"), 3, DAY) == at("2014-01-19T00:00:00")
    assert expiry_time(at("2014-01-02T00:05:00"), 1, DAY) == at("2014-01-04T00:00:00")
    # A time already at midnight is its own ceiling.
    assert expiry_time(at("2014-01-02T00:00:00"), 1, DAY) == at("2014-01-03T00:00:00")


def test_expiry_with_a_short_day_rounds_up_to_a_multiple_of_the_day_length() -> None:
    assert expiry_time(1001.5, 1, 2) == 1004
    assert expiry_time(1000.0, 3, 2) == 1006
    assert expiry_time(1000.1, 2, 2) == 1006
    assert expiry_time(0.5, 1, 0.5) == 1.0


def test_the_earliest_matching_enabled_expiration_wins() -> None:
    rules = config(
        LifecycleRule("year", expiration_days=365),
        LifecycleRule("month", prefix="logs/", expiration_days=30),
        LifecycleRule("off", prefix="logs/", status="Disabled", expiration_days=1),
        LifecycleRule("abort only", prefix="logs/", abort_days=1),
    )
    created = at("2026-01-01T12:00:00")
    assert rules.expiration_for("logs/a", created, DAY) == (at("2026-02-01T00:00:00"), "month")
    assert rules.expiration_for("docs/a", created, DAY) == (at("2027-01-02T00:00:00"), "year")


def test_a_date_rule_expires_at_its_date_whenever_the_object_was_made() -> None:
    date = int(at("2015-01-01T00:00:00"))
    rules = config(LifecycleRule("dated", prefix="past/", expiration_date=date),
                   LifecycleRule("days", prefix="other/", expiration_days=10))
    for created in (at("2014-06-01T08:00:00"), at("2026-01-01T12:00:00")):
        assert rules.expiration_for("past/x", created, DAY) == (float(date), "dated")
    later = rules.expiration_for("other/x", at("2014-06-01T08:00:00"), DAY)
    assert later == (at("2014-06-12T00:00:00"), "days")


def test_disabled_rules_and_other_prefixes_give_no_expiration() -> None:
    rules = config(LifecycleRule("off", status="Disabled", expiration_days=1),
                   LifecycleRule("logs", prefix="logs/", expiration_days=1),
                   LifecycleRule("markers", expired_object_delete_marker=True),
                   LifecycleRule("noncurrent", noncurrent_days=1))
    assert rules.expiration_for("data/x", 0.0, DAY) is None
    assert rules.expiration_for("logs", 0.0, DAY) is None  # "logs" lacks the slash
    assert rules.expiration_for("logs/x", 0.5, DAY) == (DAY * 2, "logs")


def test_on_a_tie_the_first_rule_in_document_order_wins() -> None:
    rules = config(LifecycleRule("first", expiration_days=1),
                   LifecycleRule("second", expiration_days=1))
    assert rules.expiration_for("k", 10.0, DAY) == (DAY * 2, "first")


def test_aborts_follow_the_earliest_matching_enabled_rule() -> None:
    rules = config(
        LifecycleRule("slow", abort_days=7),
        LifecycleRule("fast", prefix="test1/", abort_days=2),
        LifecycleRule("off", status="Disabled", abort_days=1),
        LifecycleRule("expiry", expiration_days=1),
    )
    started = at("2026-09-29T10:15:00")
    assert rules.abort_for("test1/a", started, DAY) == (at("2026-10-02T00:00:00"), "fast")
    assert rules.abort_for("test2/a", started, DAY) == (at("2026-10-07T00:00:00"), "slow")
    assert rules.abort_for("test1/a", 5.0, 2) == (10.0, "fast")
    assert config(LifecycleRule("e", expiration_days=1)).abort_for("k", 0.0, DAY) is None


def test_helpers_work_on_a_parsed_and_stored_configuration() -> None:
    parsed = LifecycleConfig.parse(document(
        rule(EXPIRE, rule_id="a", filter_="<Filter><And><Prefix>a/</Prefix></And></Filter>"),
        rule(ABORT, rule_id="b", filter_="<Filter/>")))
    stored = LifecycleConfig.from_json(parsed.to_json())
    assert stored == parsed
    assert stored.expiration_for("a/x", 1.0, DAY) == (2 * DAY, "a")
    assert stored.abort_for("z", 1.0, DAY) == (2 * DAY, "b")


def test_the_expiration_header_is_written_as_aws_writes_it() -> None:
    assert (expiration_header(at("2012-12-21T00:00:00"), "Rule for testfile.txt")
            == 'expiry-date="Fri, 21 Dec 2012 00:00:00 GMT", rule-id="Rule for testfile.txt"')
    assert (expiration_header(0.0, "picture-deletion-rule")
            == 'expiry-date="Thu, 01 Jan 1970 00:00:00 GMT", rule-id="picture-deletion-rule"')


def test_the_expiration_header_escapes_what_a_quoted_value_cannot_carry() -> None:
    for rule_id, sent in [('say "hi"', "say %22hi%22"), ("back\\slash", "back%5Cslash"),
                          ("naïve", "na%C3%AFve"), ("50%off", "50%25off"),
                          ("line\r\nbreak", "line%0D%0Abreak"), (" padded ", " padded ")]:
        assert expiration_header(0.0, rule_id).endswith(f'rule-id="{sent}"'), rule_id

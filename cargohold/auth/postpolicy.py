"""POST policies: who signed a browser upload form, and whether the form obeys its policy.

A browser upload (S3 POST Object) is signed in its body, not its headers: the form carries a
base64 JSON *policy* and a signature of that base64 text, with either

- SigV4: ``x-amz-algorithm`` (``AWS4-HMAC-SHA256``), ``x-amz-credential``
  (``AK/yyyymmdd/region/s3/aws4_request``), ``x-amz-date`` and ``x-amz-signature``, the hex
  HMAC-SHA256 of the policy text under the credential's signing key; or
- SigV2: ``AWSAccessKeyId`` and ``signature``, the base64 HMAC-SHA1 of the policy text under
  the secret key.

A form with none of those fields is anonymous (its policy, if any, is not checked): the
access check then decides, and only a bucket whose ACL lets everyone write accepts it.

The policy (``{"expiration": ..., "conditions": [...]}``) must not have expired, every
condition must hold, and every form field must be named by a condition, except ``file``,
``policy``, the signature fields and ``x-ignore-*`` fields. Conditions are ``{"field":
"value"}`` and ``["eq", "$field", "value"]`` (exact), ``["starts-with", "$field", "prefix"]``
(an empty prefix matches anything present; a Content-Type that is a comma-separated list
matches only if every item does) and ``["content-length-range", min, max]`` (inclusive, on the
file's size, checked once it has been received). The bucket is always a field, the one in
the request's URL, so a policy must name it: a policy signed for one bucket cannot upload to
another of its signer's buckets.

S3's answers, as captured from it (LocalStack's recordings validated against S3, ceph
s3-tests, S3 errors quoted in issue trackers) and, where nothing was captured, as close as
its documented wording allows:

- a missing signature field: 400 ``InvalidArgument`` "Bucket POST must contain a field named
  'X-Amz-Signature'.  If it is specified, please check the order of the fields.";
- an unknown access key: 403 ``InvalidAccessKeyId``; a wrong signature: 403
  ``SignatureDoesNotMatch`` with the policy as ``StringToSign``;
- a policy that is not base64 JSON of the right shape: 400 ``InvalidPolicyDocument``
  "Invalid Policy: ..." (non-integer numbers are "Invalid JSON.", as in S3);
- expired: 403 ``AccessDenied`` "Invalid according to Policy: Policy expired.";
- a failing condition: 403 ``AccessDenied`` "Invalid according to Policy: Policy Condition
  failed: ["eq", "$key", "a.txt"]" (the condition as the policy spells it; a field the form
  lacks fails every condition, even ``starts-with ""``);
- an uncovered field: 403 ``AccessDenied`` "Invalid according to Policy: Extra input fields:
  x-amz-meta-note" (lower-case names);
- a file outside ``content-length-range``: 400 ``EntityTooSmall`` / ``EntityTooLarge``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from cargohold import errors
from cargohold.auth import canonical, sigv4
from cargohold.auth.model import ANONYMOUS, KeyLookup, Principal, principal_for
from cargohold.numbers import decimal

V4_FIELDS: Final = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")
V2_FIELDS: Final = ("awsaccesskeyid", "signature")
# Fields no condition has to name.
EXEMPT: Final = frozenset({"file", "policy", "x-amz-signature", "awsaccesskeyid", "signature"})
IGNORED_PREFIX: Final = "x-ignore-"
# Fields S3 matches exactly only: a starts-with condition on them never holds.
EXACT_ONLY: Final = frozenset({"bucket", "x-amz-algorithm", "x-amz-credential", "x-amz-date"})
# How S3 spells the required fields it names in its errors.
_TITLES: Final = {"x-amz-algorithm": "X-Amz-Algorithm", "x-amz-credential": "X-Amz-Credential",
                  "x-amz-date": "X-Amz-Date", "x-amz-signature": "X-Amz-Signature",
                  "awsaccesskeyid": "AWSAccessKeyId", "signature": "Signature",
                  "policy": "Policy"}
_EXPIRATION: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")


@dataclass(frozen=True)
class Condition:
    """One ``eq`` or ``starts-with`` condition on a form field."""

    operation: str  # "eq" | "starts-with"
    field: str | None  # the field's lower-case name; None when the policy wrote no "$"
    value: str
    text: str  # the condition as S3 quotes it when it fails


@dataclass(frozen=True)
class LengthRange:
    """A ``content-length-range``; bounds are None when they are not numbers (it fails)."""

    minimum: int | None
    maximum: int | None
    text: str


@dataclass(frozen=True)
class PostPolicy:
    expiration: float  # unix time
    conditions: tuple[Condition, ...]
    length_ranges: tuple[LengthRange, ...]

    @property
    def max_length(self) -> int | None:
        """The largest file any ``content-length-range`` allows (None: no range)."""
        maxima = [r.maximum for r in self.length_ranges if r.maximum is not None]
        return min(maxima) if maxima else None


@dataclass(frozen=True)
class FormAuth:
    """Who signed the form, and the policy to enforce (None for an anonymous form)."""

    principal: Principal
    policy: PostPolicy | None


async def authenticate(fields: Mapping[str, str], lookup: KeyLookup) -> FormAuth:
    """Verify a form's signature; ``fields`` maps lower-case names to values as received.

    Returns the anonymous principal for a form without signature fields. The signature is
    checked over the policy text as sent, before the policy is decoded (as S3 does: a
    truncated policy is ``SignatureDoesNotMatch``, not ``InvalidPolicyDocument``).
    """
    if any(name in fields for name in V4_FIELDS):
        return await _verify_v4(fields, lookup)
    if any(name in fields for name in V2_FIELDS):
        return await _verify_v2(fields, lookup)
    return FormAuth(ANONYMOUS, None)


def _require(fields: Mapping[str, str], names: Sequence[str]) -> None:
    for name in names:
        if not fields.get(name):
            raise errors.InvalidArgument(
                f"Bucket POST must contain a field named '{_TITLES[name]}'.  If it is "
                "specified, please check the order of the fields.",
                ArgumentName=_TITLES[name], ArgumentValue="")


async def _verify_v4(fields: Mapping[str, str], lookup: KeyLookup) -> FormAuth:
    _require(fields, (*V4_FIELDS, "policy"))
    algorithm = fields["x-amz-algorithm"]
    if algorithm != sigv4.ALGORITHM:
        raise errors.InvalidArgument('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
                                     ArgumentName="X-Amz-Algorithm", ArgumentValue=algorithm)
    credential_text = fields["x-amz-credential"]
    if credential_text.startswith("/"):
        raise _bad_credential("a non-empty Access Key (AKID) must be provided in the "
                              "credential.", credential_text)
    # The same parser as presigned URLs: private to the auth package, shared within it.
    credential = sigv4.parse_credential(credential_text)
    if credential is None:
        raise _bad_credential('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/'
                              'REGION/SERVICE/aws4_request".', credential_text)
    if credential.service != "s3":
        raise _bad_credential(f'incorrect service "{credential.service}". This endpoint '
                              'belongs to "s3".', credential_text)
    amz_date = fields["x-amz-date"]
    if canonical.parse_amz_date(amz_date) is None:
        # Sic: S3's wording.
        raise errors.InvalidArgument("X-Amz-Date must be formated via ISO8601 Long format",
                                     ArgumentName="X-Amz-Date", ArgumentValue=amz_date)
    principal, secret = await principal_for(lookup, credential.access_key)
    policy_text = fields["policy"]
    key = sigv4.signing_key(secret, credential.date, credential.region)
    expected = sigv4.sign(key, policy_text)
    provided = fields["x-amz-signature"]
    if not hmac.compare_digest(expected.encode(), provided.strip().lower().encode()):
        _signature_mismatch(credential.access_key, policy_text, provided)
    return FormAuth(principal, parse_policy(policy_text))


async def _verify_v2(fields: Mapping[str, str], lookup: KeyLookup) -> FormAuth:
    _require(fields, (*V2_FIELDS, "policy"))
    access_key = fields["awsaccesskeyid"]
    principal, secret = await principal_for(lookup, access_key)
    policy_text = fields["policy"]
    expected = base64.b64encode(
        hmac.digest(secret.encode(), policy_text.encode(), "sha1"))
    provided = fields["signature"]
    if not hmac.compare_digest(expected, provided.strip().encode()):
        _signature_mismatch(access_key, policy_text, provided)
    return FormAuth(principal, parse_policy(policy_text))


def _bad_credential(detail: str, value: str) -> errors.S3Error:
    return errors.InvalidArgument(detail, ArgumentName="X-Amz-Credential", ArgumentValue=value)


def _signature_mismatch(access_key: str, policy_text: str, provided: str) -> NoReturn:
    raise errors.SignatureDoesNotMatch(
        AWSAccessKeyId=access_key, StringToSign=policy_text, SignatureProvided=provided,
        StringToSignBytes=" ".join(f"{byte:02x}" for byte in policy_text.encode()))


# --- the policy document ---------------------------------------------------------------------

def _invalid(detail: str) -> errors.S3Error:
    return errors.InvalidPolicyDocument(f"Invalid Policy: {detail}")


class _NotJson(ValueError):
    """A JSON value S3 refuses (a fraction, NaN, a repeated member)."""


def _no_float(text: str) -> NoReturn:
    raise _NotJson(text)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _NotJson(name)  # ambiguous: which of the two would be checked?
        result[name] = value
    return result


def parse_policy(text: str) -> PostPolicy:
    """The policy a form's ``policy`` field carries; ``InvalidPolicyDocument`` if malformed."""
    try:
        raw = base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise _invalid("Invalid Base64 encoding.") from exc
    try:
        document = json.loads(raw.decode("utf-8"), parse_float=_no_float,
                              parse_constant=_no_float, object_pairs_hook=_unique_members)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and _NotJson too
        raise _invalid("Invalid JSON.") from exc
    if not isinstance(document, dict):
        raise _invalid("Invalid JSON.")
    for name in document:
        if name not in ("expiration", "conditions"):
            # The names are case-sensitive: "CONDITIONS" is an unknown member.
            raise _invalid(f"Unexpected: '{name.lower()}'")
    if "expiration" not in document:
        raise _invalid("Policy missing expiration.")
    if "conditions" not in document:
        raise _invalid("Policy missing conditions.")
    expiration = _expiration(document["expiration"])
    if not isinstance(document["conditions"], list):
        raise _invalid("Invalid 'conditions' value: must be a List.")
    conditions: list[Condition] = []
    ranges: list[LengthRange] = []
    for item in document["conditions"]:
        parsed = _condition(item)
        if isinstance(parsed, LengthRange):
            ranges.append(parsed)
        else:
            conditions.append(parsed)
    return PostPolicy(expiration, tuple(conditions), tuple(ranges))


def _expiration(value: object) -> float:
    """ISO 8601 in UTC (``2030-01-01T00:00:00Z``, fractions allowed) as unix time."""
    match = _EXPIRATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(f"Invalid 'expiration' value: '{value}'")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:  # a month 13, a February 30th
        raise _invalid(f"Invalid 'expiration' value: '{value}'") from exc
    fraction = float("0." + match.group(7)) if match.group(7) else 0.0
    return moment.timestamp() + fraction


def _quote(items: Sequence[object]) -> str:
    """A condition as S3 prints it: ``["eq", "$key", "value"]``."""
    return json.dumps(list(items), ensure_ascii=False)


def _condition(item: object) -> Condition | LengthRange:
    if isinstance(item, dict):
        if len(item) != 1:
            raise _invalid("Invalid Simple-Condition: Simple-Conditions must have exactly "
                           "one property specified.")
        ((name, value),) = item.items()
        if value is None:
            raise _invalid("Invalid JSON.")
        if not isinstance(value, str):
            raise _invalid("Invalid Simple-Condition: value must be a string.")
        return Condition("eq", name.lower(), value, _quote(["eq", f"${name}", value]))
    if not isinstance(item, list):
        raise _invalid("Invalid condition test: must be a List or Object.")
    if not item or not isinstance(item[0], str):
        raise _invalid("Invalid Condition: missing operation identifier.")
    operation = item[0].lower()
    if operation in ("eq", "starts-with"):
        if len(item) != 3:
            raise _invalid(f"Invalid {item[0]}: wrong number of arguments.")
        field, value = item[1], item[2]
        if not isinstance(field, str) or not isinstance(value, str):
            raise _invalid("Invalid JSON.")
        name = field[1:].lower() if field.startswith("$") else None
        return Condition(operation, name, value, _quote(item))
    if operation == "content-length-range":
        if len(item) != 3:
            raise _invalid(f"Invalid {item[0]}: wrong number of arguments.")
        return LengthRange(_bound(item[1]), _bound(item[2]), _quote(item))
    raise _invalid(f"Invalid Condition: unknown operation '{item[0]}'.")


def _bound(value: object) -> int | None:
    """A size bound: a non-negative integer, or a string of digits (S3 takes both)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid("Invalid JSON.")
    if isinstance(value, int):
        if value < 0:
            raise _invalid("Invalid content-length-range: the bounds must not be negative.")
        return value
    return decimal(value)


# --- checking a form against its policy --------------------------------------------------------

def _failed(text: str) -> errors.S3Error:
    return errors.AccessDenied(f"Invalid according to Policy: Policy Condition failed: {text}")


def check_form(policy: PostPolicy, fields: Mapping[str, str], bucket: str, now: float) -> None:
    """Expiry, every condition but the file's size, and that no field goes unnamed.

    ``fields`` maps lower-case names to values with ``${filename}`` already expanded (S3
    expands variables before it validates); ``bucket`` is the bucket the form was posted to.
    """
    if now >= policy.expiration:
        raise errors.AccessDenied("Invalid according to Policy: Policy expired.")
    for length_range in policy.length_ranges:
        if length_range.minimum is None or length_range.maximum is None:
            raise _failed(length_range.text)
    for condition in policy.conditions:
        if not _holds(condition, fields, bucket):
            raise _failed(condition.text)
    covered = {c.field for c in policy.conditions if c.field is not None}
    present = ["bucket", *(name for name in fields if name != "bucket")]
    extra = [name for name in present
             if name not in covered and name not in EXEMPT
             and not name.startswith(IGNORED_PREFIX)]
    if extra:
        raise errors.AccessDenied(
            "Invalid according to Policy: Extra input fields: " + ", ".join(extra))


def _holds(condition: Condition, fields: Mapping[str, str], bucket: str) -> bool:
    name = condition.field
    if name is None:
        return False
    value = bucket if name == "bucket" else fields.get(name)
    if value is None:
        return False
    if condition.operation == "eq":
        return value == condition.value
    if name in EXACT_ONLY:
        return False
    if name == "content-type":
        # S3: Content-Type values "that include commas are interpreted as lists. Each value
        # in the list must meet the condition for the whole condition to pass."
        return all(item.strip().startswith(condition.value) for item in value.split(","))
    return value.startswith(condition.value)


def check_length(policy: PostPolicy, size: int) -> None:
    """``EntityTooSmall`` / ``EntityTooLarge`` unless every ``content-length-range`` holds."""
    for length_range in policy.length_ranges:
        if length_range.minimum is None or length_range.maximum is None:
            raise _failed(length_range.text)  # check_form refuses these before the upload
        if size < length_range.minimum:
            raise errors.EntityTooSmall(
                "Your proposed upload is smaller than the minimum allowed size",
                ProposedSize=str(size), MinSizeAllowed=str(length_range.minimum))
        if size > length_range.maximum:
            raise errors.EntityTooLarge(
                "Your proposed upload exceeds the maximum allowed size",
                ProposedSize=str(size), MaxSizeAllowed=str(length_range.maximum))

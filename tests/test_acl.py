"""The ACL module: canned ACLs, grant headers, AccessControlPolicy XML, checks (no server)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from cargohold import acl, errors
from cargohold.acl import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    LOG_DELIVERY,
    Acl,
    Grant,
    Permission,
)

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
OWNER = "owner-id"
BUCKET_OWNER = "bucket-owner-id"
GRANTEE = "grantee-id"
EMAILS = {"friend@example.com": "friend-id"}
NAMES = {OWNER: "Owner Name", BUCKET_OWNER: "Bucket Owner", GRANTEE: "Grantee Name"}
READ, WRITE, READ_ACP, WRITE_ACP, FULL = (Permission.READ, Permission.WRITE,
                                          Permission.READ_ACP, Permission.WRITE_ACP,
                                          Permission.FULL_CONTROL)


def user(canonical_id: str, permission: Permission) -> Grant:
    return Grant("CanonicalUser", canonical_id, permission)


def group(uri: str, permission: Permission) -> Grant:
    return Grant("Group", uri, permission)


def resolve(email: str) -> str | None:
    return EMAILS.get(email)


def headers(**values: str) -> dict[str, str]:
    """Request headers from keyword names: grant_read -> x-amz-grant-read."""
    return {"x-amz-" + name.replace("_", "-"): value for name, value in values.items()}


def parse_headers(values: dict[str, str]) -> Acl | None:
    return acl.from_headers(values, OWNER, resolve,
                            known_id=lambda i: i in (OWNER, GRANTEE, BUCKET_OWNER, "friend-id"))


def policy(grants: str, owner: str = f"<Owner><ID>{OWNER}</ID></Owner>") -> bytes:
    """An AccessControlPolicy body with ``grants`` (inner XML) as its AccessControlList."""
    return (f'<AccessControlPolicy xmlns="{NS}">{owner}'
            f"<AccessControlList>{grants}</AccessControlList></AccessControlPolicy>").encode()


def grant_xml(kind: str, inner: str, permission: str = "READ") -> str:
    return (f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="{kind}">{inner}</Grantee>'
            f"<Permission>{permission}</Permission></Grant>")


def parse_xml(body: bytes, owner_id: str = OWNER) -> Acl:
    return acl.from_xml(body, owner_id, resolve, acl.MAX_DOCUMENT_SIZE,
                        known_id=lambda i: i in (OWNER, GRANTEE, "friend-id"))


def raised(call: object, *args: object) -> errors.S3Error:
    assert callable(call)
    with pytest.raises(errors.S3Error) as info:
        call(*args)
    return info.value


# --- canned ACLs ---------------------------------------------------------------------------

OWNER_FULL = user(OWNER, FULL)


@pytest.mark.parametrize(("name", "bucket_owner", "grants"), [
    ("private", None, [OWNER_FULL]),
    ("public-read", None, [OWNER_FULL, group(ALL_USERS, READ)]),
    ("public-read-write", None, [OWNER_FULL, group(ALL_USERS, READ), group(ALL_USERS, WRITE)]),
    ("authenticated-read", None, [OWNER_FULL, group(AUTHENTICATED_USERS, READ)]),
    ("bucket-owner-read", BUCKET_OWNER, [OWNER_FULL, user(BUCKET_OWNER, READ)]),
    ("bucket-owner-full-control", BUCKET_OWNER, [OWNER_FULL, user(BUCKET_OWNER, FULL)]),
    ("bucket-owner-read", OWNER, [OWNER_FULL]),
    ("bucket-owner-full-control", OWNER, [OWNER_FULL]),
    ("bucket-owner-read", None, [OWNER_FULL]),
    ("bucket-owner-full-control", None, [OWNER_FULL]),
    ("log-delivery-write", None, [OWNER_FULL, group(LOG_DELIVERY, WRITE),
                                  group(LOG_DELIVERY, READ_ACP)]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_canned_acl_grants_the_owner_full_control_first_then_its_grantees(
        name: str, bucket_owner: str | None, grants: list[Grant]) -> None:
    assert acl.canned(name, OWNER, bucket_owner) == Acl(OWNER, tuple(grants))


def test_private_is_the_owner_with_full_control_only() -> None:
    assert acl.private(OWNER) == acl.canned("private", OWNER) == Acl(OWNER, (OWNER_FULL,))


@pytest.mark.parametrize("name", ["fake-acl", "Public-Read", "aws-exec-read", "public_read"])
def test_an_unknown_canned_acl_is_invalid_argument_naming_x_amz_acl(name: str) -> None:
    error = raised(acl.canned, name, OWNER)
    assert (error.code, error.status) == ("InvalidArgument", 400)
    assert error.fields == {"ArgumentName": "x-amz-acl", "ArgumentValue": name}


def test_a_private_acl_renders_as_get_bucket_acl_does() -> None:
    assert acl.private(OWNER).to_xml(NAMES) == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<AccessControlPolicy xmlns="{NS}">'
        f"<Owner><ID>{OWNER}</ID><DisplayName>Owner Name</DisplayName></Owner>"
        "<AccessControlList>"
        f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="CanonicalUser">'
        f"<ID>{OWNER}</ID><DisplayName>Owner Name</DisplayName></Grantee>"
        "<Permission>FULL_CONTROL</Permission></Grant>"
        "</AccessControlList></AccessControlPolicy>").encode()


def test_group_grantees_render_with_their_uri_and_no_display_name() -> None:
    body = acl.canned("log-delivery-write", OWNER).to_xml(NAMES).decode()
    assert body.endswith(
        f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="Group">'
        f"<URI>{LOG_DELIVERY}</URI></Grantee><Permission>WRITE</Permission></Grant>"
        f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="Group">'
        f"<URI>{LOG_DELIVERY}</URI></Grantee><Permission>READ_ACP</Permission></Grant>"
        "</AccessControlList></AccessControlPolicy>")


def test_users_without_a_known_display_name_render_without_the_element() -> None:
    body = acl.canned("bucket-owner-read", "a<&>b", "other").to_xml({}).decode()
    assert "<Owner><ID>a&lt;&amp;&gt;b</ID></Owner>" in body
    assert "DisplayName" not in body
    assert '<Grantee xmlns:xsi="' + XSI + '" xsi:type="CanonicalUser"><ID>other</ID></Grantee>' \
        in body


@pytest.mark.parametrize("name", sorted(acl.CANNED))
def test_every_canned_acl_renders_xml_that_parses_back_to_itself(name: str) -> None:
    canned = acl.canned(name, OWNER, GRANTEE)
    assert parse_xml(canned.to_xml(NAMES)) == canned


# --- grant headers -------------------------------------------------------------------------

def test_a_request_without_acl_headers_gives_none() -> None:
    assert parse_headers({}) is None
    assert parse_headers({"content-type": "text/plain", "x-amz-meta-acl": "public-read"}) is None


def test_empty_acl_headers_count_as_absent() -> None:
    assert parse_headers(headers(acl=" ", grant_read="")) is None


def test_the_canned_acl_header_gives_the_canned_acl() -> None:
    assert acl.from_headers(headers(acl="bucket-owner-full-control"), OWNER, resolve,
                            BUCKET_OWNER) == acl.canned("bucket-owner-full-control", OWNER,
                                                        BUCKET_OWNER)


def test_headers_are_read_case_insensitively_from_a_multidict_proxy() -> None:
    proxy = CIMultiDictProxy(CIMultiDict({"X-Amz-Acl": "public-read"}))
    assert acl.from_headers(proxy, OWNER, resolve) == acl.canned("public-read", OWNER)
    proxy = CIMultiDictProxy(CIMultiDict({"X-AMZ-GRANT-READ": f'id="{GRANTEE}"'}))
    assert acl.from_headers(proxy, OWNER, resolve) == Acl(OWNER, (user(GRANTEE, READ),))


def test_grant_headers_give_exactly_their_grants_without_one_for_the_owner() -> None:
    assert parse_headers(headers(grant_read=f'uri="{LOG_DELIVERY}"')) == Acl(
        OWNER, (group(LOG_DELIVERY, READ),))


def test_grant_headers_accept_several_grantees_of_each_kind() -> None:
    parsed = parse_headers(headers(
        grant_full_control=f'id="{OWNER}"',
        grant_read=(f'id="{GRANTEE}", uri="{ALL_USERS}",emailAddress="friend@example.com",'
                    f'  uri = "{AUTHENTICATED_USERS}" '),
        grant_write_acp='emailaddress=friend@example.com, id=grantee-id',
        grant_write=f"uri={LOG_DELIVERY}",
        grant_read_acp=f'id="{GRANTEE}"'))
    assert parsed == Acl(OWNER, (
        # Grants follow the header order of acl.GRANT_HEADERS, then each header's order.
        user(GRANTEE, READ), group(ALL_USERS, READ), user("friend-id", READ),
        group(AUTHENTICATED_USERS, READ),
        group(LOG_DELIVERY, WRITE),
        user(GRANTEE, READ_ACP),
        user("friend-id", WRITE_ACP), user(GRANTEE, WRITE_ACP),
        user(OWNER, FULL),
    ))


def test_a_comma_inside_a_quoted_grantee_does_not_split_it() -> None:
    parsed = acl.from_headers(headers(grant_read='id="a,b", id="c"'), OWNER, resolve)
    assert parsed == Acl(OWNER, (user("a,b", READ), user("c", READ)))


def test_an_id_grantee_is_taken_as_given_when_no_id_check_is_passed() -> None:
    parsed = acl.from_headers(headers(grant_read='id="anything"'), OWNER, resolve)
    assert parsed == Acl(OWNER, (user("anything", READ),))


def test_a_canned_acl_with_grant_headers_is_invalid_request() -> None:
    error = raised(parse_headers, headers(acl="private", grant_read=f'uri="{LOG_DELIVERY}"'))
    assert (error.code, error.status) == ("InvalidRequest", 400)
    assert error.message == "Specifying both Canned ACLs and Header Grants is not allowed"


@pytest.mark.parametrize(("header", "value", "item"), [
    ("x-amz-grant-write", 'fakekey="1234"', 'fakekey="1234"'),
    ("x-amz-grant-read", "id", "id"),
    ("x-amz-grant-read", '"id=grantee-id"', '"id=grantee-id"'),
    ("x-amz-grant-read", 'id="grantee-id', 'id="grantee-id'),
    ("x-amz-grant-read", 'id="grantee-id"x', 'id="grantee-id"x'),
    ("x-amz-grant-read-acp", 'id="grantee-id",', ""),
    ("x-amz-grant-full-control", 'id="grantee-id" uri="x"', 'id="grantee-id" uri="x"'),
    ("x-amz-grant-write-acp", "canonical=grantee-id", "canonical=grantee-id"),
])
def test_a_grantee_of_no_known_form_is_argument_format_not_recognized(
        header: str, value: str, item: str) -> None:
    error = raised(parse_headers, {header: value})
    assert (error.code, error.message) == ("InvalidArgument", "Argument format not recognized")
    assert error.fields == {"ArgumentName": header, "ArgumentValue": item}


@pytest.mark.parametrize("uri", ["http://acs.amazonaws.com/groups/s3/FakeGroup",
                                 "https://acs.amazonaws.com/groups/global/AllUsers",
                                 "AllUsers", ""])
def test_an_unknown_group_in_a_header_is_invalid_group_uri(uri: str) -> None:
    error = raised(parse_headers, headers(grant_write=f'uri="{uri}"'))
    assert (error.code, error.message) == ("InvalidArgument", "Invalid group uri")
    assert error.fields == {"ArgumentName": "uri", "ArgumentValue": uri}


@pytest.mark.parametrize("canonical_id", ["wrong-id", ""])
def test_an_unknown_id_in_a_header_is_invalid_id(canonical_id: str) -> None:
    error = raised(parse_headers, headers(grant_write=f'id="{canonical_id}"'))
    assert (error.code, error.message) == ("InvalidArgument", "Invalid id")
    assert error.fields == {"ArgumentName": "id", "ArgumentValue": canonical_id}


def test_an_email_grantee_is_resolved_to_its_account() -> None:
    parsed = parse_headers(headers(grant_read='emailAddress="friend@example.com"'))
    assert parsed == Acl(OWNER, (user("friend-id", READ),))


@pytest.mark.parametrize("email", ["stranger@example.com", ""])
def test_an_email_no_account_has_is_unresolvable_grant_by_email_address(email: str) -> None:
    error = raised(parse_headers, headers(grant_read=f'emailAddress="{email}"'))
    assert (error.code, error.status) == ("UnresolvableGrantByEmailAddress", 400)
    assert error.message == ("The e-mail address you provided does not match any account "
                             "on record.")


def test_more_than_a_hundred_header_grants_is_malformed_acl() -> None:
    hundred = parse_headers(headers(grant_read=", ".join([f'id="{GRANTEE}"'] * 100)))
    assert hundred is not None and len(hundred.grants) == 100
    error = raised(parse_headers, headers(grant_read=", ".join([f'id="{GRANTEE}"'] * 101)))
    assert error.code == "MalformedACLError"


# --- AccessControlPolicy XML ---------------------------------------------------------------

MIXED = Acl(OWNER, (
    user(OWNER, FULL), user(GRANTEE, READ), user(GRANTEE, WRITE_ACP),
    group(ALL_USERS, READ), group(AUTHENTICATED_USERS, READ_ACP), group(LOG_DELIVERY, WRITE),
    user(GRANTEE, READ),  # S3 keeps duplicates
))


@pytest.mark.parametrize("names", [NAMES, {}], ids=["with-display-names", "without"])
def test_a_policy_s3_rendered_parses_back_to_the_same_acl(names: dict[str, str]) -> None:
    assert parse_xml(MIXED.to_xml(names)) == MIXED


def test_a_pretty_printed_policy_with_its_own_xsi_prefix_parses() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<AccessControlPolicy xmlns="{NS}" xmlns:i="{XSI}">
  <Owner>
    <ID> {OWNER} </ID>
    <DisplayName>someone</DisplayName>
  </Owner>
  <AccessControlList>
    <Grant>
      <Grantee i:type="CanonicalUser"><ID>{GRANTEE}</ID><DisplayName>x</DisplayName></Grantee>
      <Permission>FULL_CONTROL</Permission>
    </Grant>
    <Grant>
      <Permission> READ </Permission>
      <Grantee i:type="Group"><URI>{ALL_USERS}</URI></Grantee>
    </Grant>
  </AccessControlList>
</AccessControlPolicy>""".encode()
    assert parse_xml(body) == Acl(OWNER, (user(GRANTEE, FULL), group(ALL_USERS, READ)))


def test_a_policy_without_namespaces_parses() -> None:
    body = (f"<AccessControlPolicy><Owner><ID>{OWNER}</ID></Owner><AccessControlList>"
            + grant_xml("Group", f"<URI>{ALL_USERS}</URI>") +
            "</AccessControlList></AccessControlPolicy>").encode()
    assert parse_xml(body) == Acl(OWNER, (group(ALL_USERS, READ),))


def test_an_empty_access_control_list_is_an_acl_without_grants() -> None:
    assert parse_xml(policy("")) == Acl(OWNER, ())


def test_an_email_grantee_in_a_policy_becomes_a_canonical_user_grant() -> None:
    body = policy(grant_xml("AmazonCustomerByEmail",
                            "<EmailAddress>friend@example.com</EmailAddress>", "WRITE"))
    assert parse_xml(body) == Acl(OWNER, (user("friend-id", WRITE),))


def test_an_email_no_account_has_in_a_policy_is_unresolvable() -> None:
    body = policy(grant_xml("AmazonCustomerByEmail", "<EmailAddress>no@example.com</EmailAddress>"))
    assert raised(parse_xml, body).code == "UnresolvableGrantByEmailAddress"


def test_a_hundred_grants_are_allowed() -> None:
    body = policy(grant_xml("Group", f"<URI>{ALL_USERS}</URI>") * 100)
    assert len(parse_xml(body).grants) == 100


OK_GRANT = grant_xml("CanonicalUser", f"<ID>{GRANTEE}</ID>")


@pytest.mark.parametrize("body", [
    b"",
    b"   ",
    b"not xml",
    b"<AccessControlPolicy>",
    policy(OK_GRANT).replace(b"AccessControlPolicy", b"AccessControlList"),
    policy(OK_GRANT, owner=""),
    policy(OK_GRANT, owner="<Owner><DisplayName>x</DisplayName></Owner>"),
    policy(OK_GRANT, owner=f"<Owner><ID>{OWNER}</ID><ID>{OWNER}</ID></Owner>"),
    policy(OK_GRANT, owner=f"<Owner><ID>{OWNER}</ID><Email>x</Email></Owner>"),
    policy(OK_GRANT, owner=f"<Owner><ID><b>{OWNER}</b></ID></Owner>"),
    f'<AccessControlPolicy xmlns="{NS}"><Owner><ID>{OWNER}</ID></Owner></AccessControlPolicy>'
    .encode(),
    policy(OK_GRANT).replace(b"</AccessControlPolicy>",
                             b"<AccessControlList/></AccessControlPolicy>"),
    policy(OK_GRANT).replace(b"</AccessControlPolicy>", b"<Extra/></AccessControlPolicy>"),
    policy(OK_GRANT.replace("Grant>", "Grants>")),
    policy(grant_xml("CanonicalUser", f"<ID>{GRANTEE}</ID>", "WRONG-PERMISSION")),
    policy(grant_xml("CanonicalUser", f"<ID>{GRANTEE}</ID>", "read")),
    policy(grant_xml("CanonicalUser", f"<ID>{GRANTEE}</ID>", "")),
    policy(grant_xml("BadType", f"<ID>{GRANTEE}</ID>")),
    policy(grant_xml("CanonicalUser", f"<URI>{ALL_USERS}</URI>")),
    policy(grant_xml("Group", f"<ID>{GRANTEE}</ID>")),
    policy(grant_xml("AmazonCustomerByEmail", f"<ID>{GRANTEE}</ID>")),
    policy(grant_xml("CanonicalUser", f"<ID>{GRANTEE}</ID><ID>{GRANTEE}</ID>")),
    policy(grant_xml("CanonicalUser", f"<ID>{GRANTEE}</ID><Name>x</Name>")),
    policy(f"<Grant><Grantee><ID>{GRANTEE}</ID></Grantee><Permission>READ</Permission></Grant>"),
    policy(f'<Grant><Grantee type="CanonicalUser"><ID>{GRANTEE}</ID></Grantee>'
           "<Permission>READ</Permission></Grant>"),
    policy(f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="CanonicalUser"><ID>{GRANTEE}</ID>'
           "</Grantee></Grant>"),
    policy("<Grant><Permission>READ</Permission></Grant>"),
    policy(OK_GRANT.replace("</Grant>", "<Permission>READ</Permission></Grant>")),
    policy(grant_xml("Group", f"<URI>{ALL_USERS}</URI>") * 101),
    policy(OK_GRANT + " " * acl.MAX_DOCUMENT_SIZE),
], ids=["empty", "blank", "not-xml", "unclosed", "other-root", "no-owner", "owner-without-id",
        "two-owner-ids", "owner-unknown-element", "owner-id-nested", "no-acl", "two-acls",
        "unknown-section", "unknown-acl-element", "unknown-permission", "lower-case-permission",
        "empty-permission", "unknown-grantee-type", "canonical-user-without-id",
        "group-without-uri", "email-without-address", "two-grantee-ids",
        "unknown-grantee-element", "no-grantee-type", "grantee-type-outside-xsi",
        "no-permission", "no-grantee", "two-permissions", "over-100-grants", "too-large"])
def test_a_policy_that_does_not_fit_s3s_schema_is_malformed_acl(body: bytes) -> None:
    error = raised(parse_xml, body)
    assert (error.code, error.status) == ("MalformedACLError", 400)
    assert error.message == ("The XML you provided was not well-formed or did not validate "
                             "against our published schema")


@pytest.mark.parametrize(("body", "argument", "value", "message"), [
    (policy(OK_GRANT, owner="<Owner><ID>wrong-id</ID></Owner>"),
     "CanonicalUser/ID", "wrong-id", "Invalid id"),
    (policy(grant_xml("CanonicalUser", "<ID>wrong-id</ID>")),
     "CanonicalUser/ID", "wrong-id", "Invalid id"),
    (policy(grant_xml("CanonicalUser", "<ID></ID>")), "CanonicalUser/ID", "", "Invalid id"),
    (policy(grant_xml("Group", "<URI>http://acs.amazonaws.com/groups/s3/FakeGroup</URI>")),
     "Group/URI", "http://acs.amazonaws.com/groups/s3/FakeGroup", "Invalid group uri"),
], ids=["unknown-owner-id", "unknown-grantee-id", "empty-grantee-id", "unknown-group"])
def test_an_unknown_id_or_group_in_a_policy_is_invalid_argument(
        body: bytes, argument: str, value: str, message: str) -> None:
    error = raised(parse_xml, body)
    assert (error.code, error.status, error.message) == ("InvalidArgument", 400, message)
    assert error.fields == {"ArgumentName": argument, "ArgumentValue": value}


def test_a_policy_naming_another_owner_is_access_denied() -> None:
    body = policy(OK_GRANT, owner=f"<Owner><ID>{GRANTEE}</ID></Owner>")
    error = raised(parse_xml, body)
    assert (error.code, error.status) == ("AccessDenied", 403)


def test_a_malformed_policy_is_malformed_before_any_value_is_checked() -> None:
    body = policy(grant_xml("CanonicalUser", "<ID>wrong-id</ID>")
                  + grant_xml("CanonicalUser", f"<ID>{GRANTEE}</ID>", "WRONG"),
                  owner="<Owner><ID>wrong-id</ID></Owner>")
    assert raised(parse_xml, body).code == "MalformedACLError"


def test_an_invalid_grantee_is_reported_before_the_owner_mismatch() -> None:
    body = policy(grant_xml("Group", "<URI>nope</URI>"), owner=f"<Owner><ID>{GRANTEE}</ID></Owner>")
    assert raised(parse_xml, body).code == "InvalidArgument"


# --- PutBucketAcl / PutObjectAcl requests ---------------------------------------------------

def put(values: dict[str, str], body: bytes = b"") -> Acl:
    return acl.from_request(values, body, OWNER, resolve, acl.MAX_DOCUMENT_SIZE)


def test_a_put_acl_request_takes_its_acl_from_headers_or_from_its_body() -> None:
    assert put(headers(acl="public-read")) == acl.canned("public-read", OWNER)
    assert put(headers(grant_read=f'id="{GRANTEE}"')) == Acl(OWNER, (user(GRANTEE, READ),))
    assert put({}, MIXED.to_xml(NAMES)) == MIXED


@pytest.mark.parametrize("values", [headers(acl="private"), headers(grant_read=f'id="{GRANTEE}"')])
def test_a_put_acl_request_with_headers_and_a_body_is_unexpected_content(
        values: dict[str, str]) -> None:
    error = raised(put, values, MIXED.to_xml(NAMES))
    assert (error.code, error.status) == ("UnexpectedContent", 400)
    assert error.message == "This request does not support content"


def test_a_put_acl_request_with_neither_is_missing_security_header_x_amz_acl() -> None:
    error = raised(put, {}, b"")
    assert (error.code, error.status) == ("MissingSecurityHeader", 400)
    assert error.message == "Your request was missing a required header"
    assert error.fields == {"MissingHeaderName": "x-amz-acl"}


# --- access checks -------------------------------------------------------------------------

ALL = frozenset(Permission)
NONE: frozenset[Permission] = frozenset()
ANONYMOUS, STRANGER = None, "stranger-id"
GRANTS_TO_GRANTEE = Acl(OWNER, (user(GRANTEE, READ_ACP), user(GRANTEE, WRITE)))
PUBLIC_READ = acl.canned("public-read", OWNER)
PUBLIC_READ_WRITE = acl.canned("public-read-write", OWNER)
AUTHENTICATED_READ = acl.canned("authenticated-read", OWNER)
LOG_DELIVERY_WRITE = acl.canned("log-delivery-write", OWNER)


@pytest.mark.parametrize(("name", "rules", "requester", "allowed"), [
    ("private", acl.private(OWNER), ANONYMOUS, NONE),
    ("private", acl.private(OWNER), STRANGER, NONE),
    ("private", acl.private(OWNER), GRANTEE, NONE),
    ("private", acl.private(OWNER), OWNER, ALL),
    ("public-read", PUBLIC_READ, ANONYMOUS, {READ}),
    ("public-read", PUBLIC_READ, STRANGER, {READ}),
    ("public-read", PUBLIC_READ, OWNER, ALL),
    ("public-read-write", PUBLIC_READ_WRITE, ANONYMOUS, {READ, WRITE}),
    ("public-read-write", PUBLIC_READ_WRITE, STRANGER, {READ, WRITE}),
    ("authenticated-read", AUTHENTICATED_READ, ANONYMOUS, NONE),
    ("authenticated-read", AUTHENTICATED_READ, STRANGER, {READ}),
    ("log-delivery-write", LOG_DELIVERY_WRITE, ANONYMOUS, NONE),
    ("log-delivery-write", LOG_DELIVERY_WRITE, STRANGER, NONE),
    ("user-grants", GRANTS_TO_GRANTEE, ANONYMOUS, NONE),
    ("user-grants", GRANTS_TO_GRANTEE, STRANGER, NONE),
    ("user-grants", GRANTS_TO_GRANTEE, GRANTEE, {READ_ACP, WRITE}),
    # Only grants count: the owner's own rights are the access check's (cargohold.access).
    ("user-grants", GRANTS_TO_GRANTEE, OWNER, NONE),
    ("full-control", Acl(OWNER, (user(GRANTEE, FULL),)), GRANTEE, ALL),
    ("full-control", Acl(OWNER, (user(GRANTEE, FULL),)), STRANGER, NONE),
    ("group-full-control", Acl(OWNER, (group(AUTHENTICATED_USERS, FULL),)), STRANGER, ALL),
    ("group-full-control", Acl(OWNER, (group(AUTHENTICATED_USERS, FULL),)), ANONYMOUS, NONE),
    ("group-full-control", Acl(OWNER, (group(ALL_USERS, FULL),)), ANONYMOUS, ALL),
])
def test_allows_answers_for_each_requester_and_permission(
        name: str, rules: Acl, requester: str | None, allowed: frozenset[Permission]) -> None:
    assert {p for p in Permission if rules.allows(requester, p)} == set(allowed)


def test_full_control_implies_every_other_permission_but_none_implies_full_control() -> None:
    for permission in Permission:
        assert Acl(OWNER, (user(GRANTEE, FULL),)).allows(GRANTEE, permission)
        others = Acl(OWNER, tuple(user(GRANTEE, p) for p in Permission if p is not FULL))
        assert others.allows(GRANTEE, permission) == (permission is not FULL)


@pytest.mark.parametrize(("rules", "public"), [
    (acl.private(OWNER), False),
    (PUBLIC_READ, True),
    (AUTHENTICATED_READ, True),
    (LOG_DELIVERY_WRITE, False),
    (GRANTS_TO_GRANTEE, False),
    (Acl(OWNER, (group(ALL_USERS, READ_ACP),)), True),
])
def test_an_acl_is_public_when_all_or_authenticated_users_have_any_grant(
        rules: Acl, public: bool) -> None:
    assert rules.is_public() is public


# --- storage -------------------------------------------------------------------------------

@pytest.mark.parametrize("rules", [
    acl.private(OWNER), MIXED, Acl(OWNER, ()), Acl("ünï \"cödé\"", (user("<&>", WRITE),)),
], ids=["private", "mixed", "no-grants", "odd-characters"])
def test_json_round_trips(rules: Acl) -> None:
    text = rules.to_json()
    assert Acl.from_json(text) == rules
    assert ", " not in text and '": ' not in text  # compact


def test_from_json_parses_each_distinct_text_once() -> None:
    text = MIXED.to_json()
    assert Acl.from_json(text) is Acl.from_json(text)

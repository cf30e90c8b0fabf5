"""The ``cargohold`` command: ``serve`` and ``admin``."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cargohold import config, errors, server
from cargohold.lifecycle_worker import STATUS_SETTING
from cargohold.store.base import KEY_PERMISSIONS, AccessKey, Account, MetadataStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cargohold",
                                     description="S3-compatible object storage server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    config.add_arguments(serve)

    admin = commands.add_parser("admin", help="manage accounts and keys, migrate the "
                                "store, see what the lifecycle worker did")
    config.add_arguments(admin)
    admin.add_argument("--json", action="store_true", help="JSON output")
    areas = admin.add_subparsers(dest="area", required=True)

    account = areas.add_parser("account").add_subparsers(dest="action", required=True)
    create = account.add_parser("create")
    create.add_argument("name")
    create.add_argument("--display-name")
    create.add_argument("--email", default="")
    create.add_argument("--id", dest="canonical_id")
    create.add_argument("--access-key")
    create.add_argument("--secret-key")
    account.add_parser("list")
    delete = account.add_parser("delete")
    delete.add_argument("name")

    key = areas.add_parser("key").add_subparsers(dest="action", required=True)
    key_create = key.add_parser("create", help="a full-access key, or a limited one with "
                                "--grant")
    key_create.add_argument("--account", required=True)
    key_create.add_argument("--access-key")
    key_create.add_argument("--secret-key")
    key_create.add_argument("--grant", action="append", default=[], metavar="BUCKET:PERM",
                            help="limit the key to BUCKET with PERM (read, readwrite, "
                            "fullaccess); repeat for more buckets")
    key_update = key.add_parser("update", help="replace the grants of a limited key")
    key_update.add_argument("key")
    key_update.add_argument("--grant", action="append", default=[], metavar="BUCKET:PERM")
    key_update.add_argument("--clear-grants", action="store_true",
                            help="leave the key limited to no bucket at all")
    key_list = key.add_parser("list")
    key_list.add_argument("--account")
    key_delete = key.add_parser("delete")
    key_delete.add_argument("key")

    areas.add_parser("migrate", help="bring the metadata store's schema up to date")
    lifecycle = areas.add_parser("lifecycle").add_subparsers(dest="action", required=True)
    lifecycle.add_parser("status", help="what the last lifecycle pass did, and the totals")

    tls = areas.add_parser("tls").add_subparsers(dest="action", required=True)
    self_signed = tls.add_parser(
        "self-signed", help="write a self-signed certificate and key for --tls-cert/--tls-key")
    self_signed.add_argument("--out-dir", required=True,
                             help="directory for cert.pem and key.pem (created if missing)")
    self_signed.add_argument("--host", dest="names", action="append", default=[],
                             metavar="NAME", help="a DNS name or IP address the certificate "
                             "is for; repeat for more (default: the domain, its bucket, "
                             "region and website wildcards, 127.0.0.1 and ::1)")
    self_signed.add_argument("--days", type=int, default=365, help="validity (default: 365)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = config.load(args)
    if args.command == "serve":
        return server.serve(settings)
    try:
        if args.area == "tls":
            result = _write_self_signed(settings, args)  # files only: no store is opened
        else:
            result = asyncio.run(_admin(settings, args))
    except errors.S3Error as exc:
        print(f"cargohold admin: {exc.message}", file=sys.stderr)
        return 1
    _print(result, args.json)
    return 0


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    rows = result if isinstance(result, list) else [result]
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


def _account_dict(account: Account) -> dict[str, Any]:
    return {"name": account.name, "canonical_id": account.canonical_id,
            "display_name": account.display_name, "email": account.email}


def _key_dict(key: AccessKey, account: Account | None, secret: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"access_key": key.access_key,
                           "account": account.name if account else key.account_id,
                           "access": "limited" if key.is_limited else "full"}
    if key.grants is not None:
        out["grants"] = dict(sorted(key.grants.items()))
    if secret:
        out["secret_key"] = key.secret_key
    return out


def _write_self_signed(settings: config.Settings, args: argparse.Namespace) -> dict[str, Any]:
    """``admin tls self-signed``: write ``cert.pem`` and ``key.pem`` (readable by the owner
    only) into ``--out-dir``."""
    names = args.names or [settings.domain, f"*.{settings.domain}",
                           f"*.{settings.region}.{settings.domain}",
                           f"*.{settings.region}-static.{settings.domain}", "127.0.0.1", "::1"]
    cert_pem, key_pem = self_signed_pair(names, days=args.days)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / "cert.pem", out / "key.pem"
    cert_path.write_bytes(cert_pem)
    # Created 0600 rather than chmod-ed after writing, so the key is never readable by others.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    os.chmod(key_path, 0o600)  # an existing file keeps its mode through O_CREAT
    return {"cert": str(cert_path), "key": str(key_path), "names": ",".join(names),
            "days": args.days}


def self_signed_pair(names: Sequence[str], days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``names`` (DNS names or IP addresses) and its key, PEM.

    The certificate is its own CA (basic constraints, key usage, key identifiers), so
    clients accept it as a trust anchor (``verify=cert.pem``, ``--ca-bundle``) even where
    OpenSSL checks strictly.
    """
    # Imported here, not at module level: only this command builds certificates.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not names:
        raise errors.InvalidArgument("give at least one --host")
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cargohold")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=False,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def _admin(settings: config.Settings, args: argparse.Namespace) -> Any:
    store = server.open_store(settings)
    await store.open()
    try:
        return await _admin_action(store, settings, args)
    finally:
        await store.close()


async def _account_named(store: MetadataStore, name: str) -> Account:
    account = await store.get_account_by_name(name)
    if account is None:
        raise errors.InvalidArgument(f"no account named {name!r}")
    return account


async def _new_key(store: MetadataStore, settings: config.Settings, account: Account,
                   access_key: str | None, secret_key: str | None,
                   grants: dict[str, str] | None = None) -> AccessKey:
    if bool(access_key) != bool(secret_key):
        raise errors.InvalidArgument("--access-key and --secret-key go together")
    if len(await store.list_keys(account.canonical_id)) >= settings.max_access_keys:
        raise errors.InvalidRequest(f"Account {account.name!r} already has "
                                    f"{settings.max_access_keys} access keys.")
    key = AccessKey(access_key or server.new_access_key(),
                    secret_key or server.new_secret_key(), account.canonical_id, time.time(),
                    grants=grants)
    await store.create_key(key)
    return key


async def _parse_grants(store: MetadataStore, account_id: str,
                        specs: Sequence[str]) -> dict[str, str]:
    """``BUCKET:PERM`` arguments as grants, each naming an existing bucket of the account."""
    grants: dict[str, str] = {}
    for spec in specs:
        bucket_name, _, permission = spec.rpartition(":")
        if not bucket_name or permission not in KEY_PERMISSIONS:
            raise errors.InvalidArgument(
                f"invalid grant {spec!r}: use BUCKET:PERM with PERM one of "
                f"{', '.join(KEY_PERMISSIONS)}")
        if bucket_name in grants:
            raise errors.InvalidArgument(f"bucket {bucket_name!r} is granted twice")
        bucket = await store.get_bucket(bucket_name)
        if bucket is None or bucket.owner_id != account_id:
            raise errors.InvalidArgument(
                f"no bucket {bucket_name!r} belongs to the key's account")
        grants[bucket_name] = permission
    return grants


async def _admin_action(store: MetadataStore, settings: config.Settings,
                        args: argparse.Namespace) -> Any:
    if args.area == "account":
        if args.action == "create":
            canonical_id = args.canonical_id or server.new_canonical_id()
            account = Account(canonical_id=canonical_id, name=args.name,
                              display_name=args.display_name or args.name,
                              email=args.email, created=time.time())
            await store.create_account(account)
            key = await _new_key(store, settings, account, args.access_key, args.secret_key)
            return {**_account_dict(account), **_key_dict(key, account, secret=True)}
        if args.action == "list":
            return [_account_dict(a) for a in await store.list_accounts()]
        if args.action == "delete":
            account = await _account_named(store, args.name)
            await store.delete_account(account.canonical_id)
            return {"deleted": account.name}
    if args.area == "key":
        if args.action == "create":
            account = await _account_named(store, args.account)
            grants = (await _parse_grants(store, account.canonical_id, args.grant)
                      if args.grant else None)
            key = await _new_key(store, settings, account, args.access_key, args.secret_key,
                                 grants)
            return _key_dict(key, account, secret=True)
        if args.action == "update":
            existing = await store.get_key(args.key)
            if existing is None:
                raise errors.InvalidArgument(f"no access key {args.key!r}")
            if not args.grant and not args.clear_grants:
                raise errors.InvalidArgument("give --grant BUCKET:PERM or --clear-grants")
            grants = await _parse_grants(store, existing.account_id, args.grant)
            key = await store.set_key_grants(args.key, grants)
            return _key_dict(key, await store.get_account(key.account_id), secret=False)
        if args.action == "list":
            account_id = None
            if args.account:
                account_id = (await _account_named(store, args.account)).canonical_id
            accounts = {a.canonical_id: a for a in await store.list_accounts()}
            return [_key_dict(k, accounts.get(k.account_id), secret=False)
                    for k in await store.list_keys(account_id)]
        if args.action == "delete":
            if not await store.delete_key(args.key):
                raise errors.InvalidArgument(f"no access key {args.key!r}")
            return {"deleted": args.key}
    if args.area == "migrate":
        # Opening the store applied any pending migration (once, whoever runs it first).
        return {"schema_version": await store.schema_version()}
    if args.area == "lifecycle" and args.action == "status":
        text = await store.get_setting(STATUS_SETTING)
        if text is None:  # no pass has run yet
            return {"last_pass": None, "totals": None}
        return json.loads(text)
    raise errors.InvalidArgument("unknown admin command")

"""Settings: command-line flags over ``CARGOHOLD_*`` environment variables over a TOML file.

Every option has one name used three ways: ``--data-dir`` on the command line,
``CARGOHOLD_DATA_DIR`` in the environment, ``data_dir`` (or ``data-dir``) in the TOML file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 9000
    # HTTPS: a PEM certificate (chain first) and its private key; both empty: plain HTTP.
    tls_cert: str = ""
    tls_key: str = ""
    data_dir: str = "./cargohold-data"
    # Metadata store: "" is the embedded SQLite file in the data directory; a
    # postgresql://user:password@host:port/db URL shares one database between gateways.
    meta: str = ""
    meta_pool_size: int = 10  # PostgreSQL connections per worker process
    # Background work runs in the holder of a lease in the metadata store; a holder that
    # dies is replaced within about this long.
    lease_seconds: float = 10.0
    region: str = "nyc3"
    domain: str = "localhost"
    workers: int = 0  # 0: one per core
    max_buckets: int = 100
    max_access_keys: int = 200  # per account (Spaces' limit)
    max_object_size: int = 5 * 1024**3  # single PUT cap (S3: 5 GiB)
    max_metadata_size: int = 2048  # user metadata cap (S3: 2 KiB)
    max_xml_size: int = 1024 * 1024  # request XML bodies (DeleteObjects with 1000 keys fits)
    # Uploads and copies that would leave less than this free on the data directory's file
    # system are refused (507 InsufficientStorage), so deletes (and the metadata writes
    # they need) still work on a full disk. 0 turns the check off.
    min_free_bytes: int = 64 * 1024**2
    max_skew_seconds: int = 900
    gc_interval_seconds: float = 60.0
    orphan_grace_seconds: float = 3600.0
    # How long a replaced or deleted object's blob file outlives it. 0 removes it at the
    # next GC pass, which is safe where an open file survives its unlink (local disks,
    # CephFS); on NFS, set it longer than the slowest download (see docs/scaling.md).
    freed_blob_grace_seconds: float = 0.0
    # Incomplete multipart uploads older than this are aborted and their parts freed
    # (S3 leaves that to a lifecycle rule; 30 days here). 0 keeps them forever.
    multipart_expiry_seconds: float = 30 * 24 * 3600.0
    # How often worker 0 writes queued access-log records into their target buckets.
    log_delivery_interval_seconds: float = 300.0
    # The length of a lifecycle "day": rule ages count in these and due times round up to
    # multiples of it (86400: midnight UTC, as S3). Tests shrink it to see rules act.
    lifecycle_day_seconds: float = 86400.0
    # How often worker 0 applies lifecycle rules (expiring objects, aborting uploads).
    lifecycle_interval_seconds: float = 60.0
    # SSE-C over plain HTTP (S3 refuses it: the key travels in a header): "loopback" allows
    # it from loopback clients (local development), "always", or "never".
    sse_c_over_http: str = "loopback"
    log_level: str = "info"
    root_access_key: str = ""
    root_secret_key: str = ""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


_SECRET_FIELDS = {"root_secret_key"}  # never a flag: it would show in `ps`


def _coerce(field_type: Any, raw: Any, name: str) -> Any:
    kind = field_type if isinstance(field_type, type) else {"int": int, "float": float,
                                                            "str": str}.get(str(field_type))
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"cargohold: invalid value for {name}: {raw!r}") from exc
    return str(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per setting (defaults left unset so lower layers show through)."""
    parser.add_argument("--config", help="TOML config file")
    for f in fields(Settings):
        if f.name in _SECRET_FIELDS or f.name == "root_access_key":
            continue  # credentials come from the environment or the config file only
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, default=None, help=f"(default: {f.default})")


def load(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Resolve settings: defaults < TOML file < environment < command line."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    config_file = getattr(args, "config", None) or environ.get("CARGOHOLD_CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"cargohold: cannot read config {config_file}: {exc}") from exc
        table = data.get("cargohold", data)
        for key, value in table.items():
            values[key.replace("-", "_")] = value
    for f in fields(Settings):
        env_value = environ.get("CARGOHOLD_" + f.name.upper())
        if env_value is not None and env_value != "":
            values[f.name] = env_value
        cli_value = getattr(args, f.name, None)
        if cli_value is not None:
            values[f.name] = cli_value
    known = {f.name: f for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise SystemExit(f"cargohold: unknown setting(s): {', '.join(sorted(unknown))}")
    coerced = {name: _coerce(known[name].type, value, name) for name, value in values.items()}
    settings = dataclasses.replace(Settings(), **coerced)
    if settings.workers <= 0:
        settings.workers = os.cpu_count() or 1
    return settings

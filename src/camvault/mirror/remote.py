"""Which remotes a mirror may push to, and how a token reaches git without touching disk.

A remote URL is stored and shown as given, so it must never carry a secret: URLs with
credentials (``https://user:token@host/...``) or a query string are refused, and the token
travels separately. Only transports that push are accepted (https, http, ssh, file); git's
other transports (``ext::`` runs a command, ``fd::``...) are refused outright.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from camvault.errors import InvalidMirrorUrl

Scheme = Literal["https", "http", "ssh", "file"]
SCHEMES: tuple[Scheme, ...] = ("https", "http", "ssh", "file")
MAX_URL = 2048
MAX_TOKEN = 4096
DEFAULT_USERNAME = "oauth2"  # GitLab accepts any user name with an access token

# ssh's short form: [user@]host:path, with no "://" (that would be a URL).
_SCP_LIKE = re.compile(r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(?!//).+")
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,255}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: it goes into an HTTP header


@dataclass(frozen=True)
class Remote:
    """A validated mirror remote."""

    url: str
    scheme: Scheme

    @property
    def takes_token(self) -> bool:
        return self.scheme in ("https", "http")

    @property
    def origin(self) -> str:
        """``scheme://host[:port]/``: the scope git and git-lfs send the token to."""
        parts = urlsplit(self.url)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}/"


def parse_remote(url: str) -> Remote:
    """Validate a mirror URL; raise InvalidMirrorUrl saying what is wrong and what to do."""
    url = url.strip()
    if not url:
        raise InvalidMirrorUrl("the mirror URL is empty")
    if len(url) > MAX_URL:
        raise InvalidMirrorUrl(f"the mirror URL is longer than {MAX_URL} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidMirrorUrl("the mirror URL must not contain spaces or control characters")
    if url.startswith("-"):
        raise InvalidMirrorUrl("the mirror URL must not start with '-'")
    if "://" not in url:
        match = _SCP_LIKE.fullmatch(url)
        if match is None or "::" in url:
            raise InvalidMirrorUrl(
                "unsupported mirror URL: use https://, http://, ssh:// or file:// "
                "(or the ssh form user@host:path)"
            )
        return Remote(url, "ssh")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidMirrorUrl(
            f"unsupported mirror URL scheme {scheme!r}: use https://, http://, ssh:// or file://"
        )
    if parts.query or parts.fragment:
        raise InvalidMirrorUrl("the mirror URL must not have a query string or fragment")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidMirrorUrl("a file:// mirror URL needs an absolute local path")
        return Remote(url, "file")
    if not parts.hostname:
        raise InvalidMirrorUrl("the mirror URL has no host")
    if parts.hostname.startswith("-"):
        # ssh would read "-oProxyCommand=..." as an option
        raise InvalidMirrorUrl("the mirror URL's host must not start with '-'")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidMirrorUrl("the mirror URL has an invalid port") from exc
    if scheme == "ssh":
        if parts.password is not None:
            raise InvalidMirrorUrl("the mirror URL must not contain a password")
        return Remote(url, "ssh")
    if "@" in parts.netloc:
        raise InvalidMirrorUrl(
            "the mirror URL must not contain credentials: give the token in the 'token' "
            "field (it is stored encrypted), and the user name, if any, in 'username'"
        )
    return Remote(url, scheme)


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise InvalidMirrorUrl(
            "the mirror user name is 1-255 letters, digits or . _ @ + - (no ':' or spaces)"
        )
    return username


def check_token(token: str) -> str:
    if len(token) > MAX_TOKEN:
        raise InvalidMirrorUrl(f"the token is longer than {MAX_TOKEN} characters")
    if not _TOKEN.fullmatch(token):
        raise InvalidMirrorUrl("the token must be printable ASCII without spaces")
    return token


def basic_auth(username: str, token: str) -> str:
    """The ``Authorization`` header value for HTTP basic auth with a token."""
    return "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode("ascii")


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret, and its URL-encoded forms, replaced by ``***``.

    Git and git-lfs may echo a URL or header in an error; what we store or log must not
    carry the token whatever they print.
    """
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) < 4:
            continue
        forms.update({secret, quote(secret, safe=""), quote(secret)})
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text

"""Which mirror URLs are accepted, and how secrets are kept out of what git prints."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from camvault.errors import InvalidMirrorUrl
from camvault.mirror.push import Target, child_env, classify
from camvault.mirror.remote import check_token, check_username, parse_remote, scrub
from camvault.mirror.state import retry_delay


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("https://gitlab.example.com/shop/vault.git", "https"),
        ("http://10.0.0.5:8080/shop/vault.git", "http"),
        ("ssh://git@gitlab.example.com:2222/shop/vault.git", "ssh"),
        ("git@gitlab.example.com:shop/vault.git", "ssh"),
        ("file:///srv/git/vault.git", "file"),
    ],
)
def test_supported_remotes_are_accepted(url: str, scheme: str) -> None:
    remote = parse_remote(url)
    assert (remote.url, remote.scheme) == (url, scheme)
    assert remote.takes_token == (scheme in ("https", "http"))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://oauth2:glpat-secret@gitlab.example.com/shop/vault.git", "credentials"),
        ("https://glpat-secret@gitlab.example.com/shop/vault.git", "credentials"),
        ("ssh://git:hunter2@gitlab.example.com/shop/vault.git", "password"),
        ("https://gitlab.example.com/vault.git?private_token=x", "query"),
        ("ext::sh%20-c%20touch%20/tmp/pwned", "unsupported"),
        ("fd::3", "unsupported"),
        ("git://gitlab.example.com/vault.git", "unsupported"),
        ("ftp://example.com/vault.git", "unsupported"),
        ("-uhttps://x/", "'-'"),
        ("ssh://-oProxyCommand=touch%20x/vault.git", "'-'"),
        ("https://gitlab.example.com/a b.git", "spaces"),
        ("https:///vault.git", "no host"),
        ("file://server/share/vault.git", "absolute local path"),
        ("vault.git", "unsupported"),
        ("", "empty"),
    ],
)
def test_urls_with_credentials_or_unsupported_schemes_are_refused(url: str, why: str) -> None:
    with pytest.raises(InvalidMirrorUrl, match=why):
        parse_remote(url)


def test_token_and_username_must_be_header_safe() -> None:
    with pytest.raises(InvalidMirrorUrl):
        check_token("abc\r\nX-Evil: 1")
    with pytest.raises(InvalidMirrorUrl):
        check_token("with space")
    with pytest.raises(InvalidMirrorUrl):
        check_username("user:name")
    assert check_token("glpat-AbC_123.xyz") == "glpat-AbC_123.xyz"


def test_scrub_removes_the_token_in_every_form_git_might_print() -> None:
    target = Target(parse_remote("https://gitlab.example.com/v.git"), "oauth2", "s3cr/t+tok=en")
    basic = base64.b64encode(b"oauth2:s3cr/t+tok=en").decode()
    said = (
        "fatal: unable to access 'https://oauth2:s3cr/t+tok=en@host/': 401\n"
        f"> Authorization: Basic {basic}\n"
        "url-encoded: s3cr%2Ft%2Btok%3Den\n"
    )
    clean = scrub(said, target.secrets())
    assert "s3cr" not in clean and basic not in clean
    assert clean.count("***") == 3


def test_the_token_reaches_git_only_through_the_child_environment(tmp_path: Path) -> None:
    target = Target(parse_remote("https://gitlab.example.com/shop/v.git"), "oauth2", "tok-123")
    env = child_env(tmp_path, target)
    keys = {env[k]: env[k.replace("KEY", "VALUE")] for k in env if k.startswith("GIT_CONFIG_KEY")}
    header = keys["http.https://gitlab.example.com/.extraHeader"]
    assert header == "Authorization: Basic " + base64.b64encode(b"oauth2:tok-123").decode()
    assert keys["protocol.allow"] == "never" and keys["protocol.https.allow"] == "always"
    assert "protocol.ext.allow" not in keys
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    # No token at all for a file remote, or without one.
    file_env = child_env(tmp_path, Target(parse_remote("file:///srv/v.git"), "oauth2", None))
    assert not any("extraHeader" in v for v in file_env.values())


@pytest.mark.parametrize(
    ("output", "kind"),
    [
        (" ! [rejected]        abc -> main (fetch first)", "rejected"),
        ("fatal: Authentication failed for 'https://h/v.git/'", "auth"),
        ("error: RPC failed; HTTP 403 curl 22 The requested URL returned error: 403", "auth"),
        ("fatal: unable to access 'http://127.0.0.1:1/v.git/': Failed to connect", "unreachable"),
        ("fatal: '/srv/gone.git' does not appear to be a git repository", "unreachable"),
        ("error: commit 4010abc: something odd", "failed"),
    ],
)
def test_git_output_is_classified_for_the_admin(output: str, kind: str) -> None:
    assert classify(output) == kind


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    for failures, low, high in [
        (1, 2.5, 5),
        (2, 5, 10),
        (3, 10, 20),
        (9, 450, 900),
        (40, 450, 900),
    ]:
        delays = [retry_delay(failures, 5.0, 900.0) for _ in range(200)]
        assert all(low <= d <= high for d in delays), (failures, min(delays), max(delays))
        assert len(set(delays)) > 150, "jittered, so instances do not retry in step"

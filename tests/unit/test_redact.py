"""tether.redact: what is taken out of stored text, what is left alone, and that hostile input
cannot make it slow (every pattern is linear: checked on the compiled patterns and on long
adversarial strings)."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether import redact
from tether.redact import (
    REDACTED,
    contains_secret,
    is_redacted,
    redact_argv,
    redact_json,
    redact_lines,
    redact_text,
)
from tether.text import LazyPattern

# Fake secrets, built so that no scanner mistakes this file for a leak.
GH = "ghp_" + "Zq7Xw2Lm9Np4Rs6Tv8Uy0Ab3Cd5Ef1Gh7Ij2K"
GH_PAT = "github_" + "pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz0123456789"
GHO = "gho_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
OPENAI = "sk-" + "proj-" + "R4nd0mAp1K3yTh4tL00ksR34l"
ANTHROPIC = "sk-" + "ant-api03-" + "Xy9Zw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
SLACK = "xox" + "b-1234567890-0987654321-AbCdEfGhIjKlMnOp"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
STRIPE = "sk_" + "live_4eC39HqLyjWDarjtT1zdp7dc"
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
PGP = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
    "Version: GnuPG v2\n"
    "\n"
    "lQOYBF0ZpXoBCADK7wJqPzS8bOZlh1c9yqXvYk3Ukq9lqPzK1mC2dE4rT7yU8iO0\n"
    "=xK7q\n"
    "-----END PGP PRIVATE KEY BLOCK-----"
)
OPENSSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDgW2p3H0Zqk4x6mCkq4XjY0mVt3aJ7zJfQn2yP5lZ1UwAAAJgAAAAAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
KEY_BODY = "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        # credentials in URLs
        ("git clone https://alice:pa55w0rd@example.com/r.git", "pa55w0rd", "https://alice:"),
        ("REDIS_URL=redis://:Hunter2Redis@cache:6379/0", "Hunter2Redis", "redis://:"),
        ("postgres://app:p@ss:w0rd@db:5432/x", "ss:w0rd", "@db:5432"),
        # connection strings
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=q8W+e3R/t5Y==;EndpointSuffix=core",
            "q8W+e3R/t5Y==",
            "AccountName=acct",
        ),
        ("Server=db;Database=x;User Id=sa;Password=Str0ngPa55;", "Str0ngPa55", "User Id=sa"),
        ("Driver={ODBC};Server=x;Uid=u;Pwd=Secr3tPwd;", "Secr3tPwd", "Uid=u"),
        ("Endpoint=sb://n/;SharedAccessSignature=sv=2020&sig=abcDEF123&se=1", "abcDEF123", "Endpoint="),
        ("https://a.blob.core.windows.net/c?sv=2020&sig=Zx9Yw8Vu7%2B&se=2021", "Zx9Yw8Vu7", "sv=2020"),
        # headers
        ("curl -H 'Authorization: Bearer abc.def.ghi0123456789' x", "abc.def.ghi0123456789", "Bearer "),
        ('{"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}', "dXNlcjpwYXNzd29yZA==", "Authorization"),
        ("> Proxy-Authorization: Digest username=x, response=ab12", "response=ab12", "Proxy-"),
        ("token header: Bearer A1b2C3d4E5f6G7h8", "A1b2C3d4E5f6G7h8", "Bearer"),
        ("Cookie: sessionid=s3ss10nV4lue; theme=dark", "s3ss10nV4lue", "Cookie"),
        # flags
        ("mysql -uroot -pPASSWORD1 shop", "PASSWORD1", "-uroot"),
        ("sudo /usr/bin/mysqldump -h db -p'hunter 2' x", "hunter 2", "mysqldump"),
        ("mysql -u root --password=hunter2", "hunter2", "--password="),
        ("psql --password hunter2 -h db", "hunter2", "--password"),
        ("gh api --token T0kenValue /user", "T0kenValue", "--token"),
        ("vault login --client-secret cl1ent5ecret", "cl1ent5ecret", "--client-secret"),
        ("docker login -u me -p Regi5tryPw ghcr.io", "Regi5tryPw", "ghcr.io"),
        ("sshpass -p 'sshpa55' ssh host", "sshpa55", "ssh host"),
        ("curl -u alice:cUrlPa55 https://x", "cUrlPa55", "alice:"),
        ("openssl rsa -in k.pem -passin pass:0pen55l", "0pen55l", "pass:"),
        ("7z x backup.7z -pArch1vePw", "Arch1vePw", "7z x"),
        # assignments, JSON, YAML
        ('{"password": "hunter2", "user": "bob"}', "hunter2", '"user": "bob"'),
        ("{'api_key': 'AbC123xyz'}", "AbC123xyz", "api_key"),
        ("client_secret: shh-very-secret", "shh-very-secret", "client_secret"),
        ("export DB_PASSWORD='s3cret value'", "s3cret value", "DB_PASSWORD="),
        ("PGPASSWORD=pgpa55 psql -h x", "pgpa55", "psql -h x"),
        ("MYSQL_PWD=mypwd mysql", "mypwd", "MYSQL_PWD="),
        ("npm config set //registry.npmjs.org/:_authToken=npmT0k3n", "npmT0k3n", "_authToken="),
        ("aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "aws_secret"),
        # token shapes, whatever they are called
        (f"x {GH} y", GH, "x "),
        (f"x={GH_PAT}", GH_PAT, "x="),
        (f"remote: {GHO}", GHO, "remote: "),
        (f"key {OPENAI}", OPENAI, "key "),
        (f"ANTHROPIC={ANTHROPIC}", ANTHROPIC, "ANTHROPIC="),
        (f"slack {SLACK}", SLACK, "slack "),
        (f"aws {AWS_ID}", AWS_ID, "aws "),
        (f"google {GOOGLE}", GOOGLE, "google "),
        (f"jwt {JWT}", JWT, "jwt "),
        (f"stripe {STRIPE}", STRIPE, "stripe "),
        (f"hf {HF}", HF, "hf "),
        # private keys: whole blocks, and a block whose BEGIN line scrolled away
        (f"$ cat id_rsa\n{PEM}\n$ ls", KEY_BODY, "$ ls"),
        (f"$ gpg --export-secret-keys -a\n{PGP}\n$", PGP.split("\n")[3], "$ gpg"),
        (OPENSSH, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", ""),
        ("\n".join(PEM.split("\n")[2:]) + "\n$ ls", "VTLw7onLRnrq0", "$ ls"),
        (PEM.rsplit("\n", 1)[0], KEY_BODY, ""),  # END not (yet) shown
    ],
)
def test_secret_is_redacted_and_its_name_kept(text: str, secret: str, kept: str) -> None:
    out = redact_text(text)
    assert secret not in out, out
    assert REDACTED in out
    assert kept in out
    assert contains_secret(text)
    assert redact_text(out) == out  # idempotent: a second pass (a restored snapshot) changes nothing


@pytest.mark.parametrize(
    "line",
    [
        "$ pytest -q tests/test_auth.py",
        "Serving HTTP on 127.0.0.1 port 8000",
        "the auth module was refactored",
        "export TOKEN=$GITHUB_TOKEN",
        'echo "password=$DB_PASSWORD"',
        "gh auth login --with-token < file",
        "docker login --password-stdin -u me",
        "kubectl create secret generic x --from-file=./creds",
        "--token-file /run/secrets/token",
        "Author: Jane Doe <jane@example.com>",
        "tokens: 1234 in, 56 out",
        "PASS: test_parser",
        "PWD=/home/user/project",
        "OLDPWD=/tmp",
        "mkdir -p build && git add -p",
        "mysql -p shop",  # prompts for the password: nothing to hide
        "docker run -p 8080:80 -u 1000:1000 nginx",
        "curl -u alice https://example.com",
        "https://example.com:8080/path?q=1",
        "ssh://git@github.com/x/y.git",
        "TokenKind::Ident",
        "if password == expected:",
        "secret_name=prod-db",
        "",
    ],
)
def test_ordinary_text_is_left_alone(line: str) -> None:
    assert redact_text(line) == line
    assert not contains_secret(line)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["mysql", "-uroot", "-pPASSWORD1", "shop"], ["mysql", "-uroot", f"-p{REDACTED}", "shop"]),
        (["mysql", "-p", "shop"], ["mysql", "-p", "shop"]),
        (["psql", "--password", "hunter2", "-h", "db"], ["psql", "--password", REDACTED, "-h", "db"]),
        (["mysql", "--password=a b"], ["mysql", f"--password={REDACTED}"]),
        (
            ["curl", "-H", "Authorization: Bearer abc123def456", "https://x"],
            ["curl", "-H", f"Authorization: Bearer {REDACTED}", "https://x"],
        ),
        (["curl", "-u", "alice:pw123", "x"], ["curl", "-u", f"alice:{REDACTED}", "x"]),
        (["sudo", "sshpass", "-p", "sshpw", "ssh", "h"], ["sudo", "sshpass", "-p", REDACTED, "ssh", "h"]),
        (["docker", "login", "-p", "pw123", "reg"], ["docker", "login", "-p", REDACTED, "reg"]),
        (["docker", "run", "-p", "80:80", "img"], ["docker", "run", "-p", "80:80", "img"]),
        (
            ["docker", "exec", "db", "mysql", "-pRootPw", "-e", "select 1"],
            ["docker", "exec", "db", "mysql", f"-p{REDACTED}", "-e", "select 1"],
        ),
        (["sh", "-c", "mysql -pSECRET1 db"], ["sh", "-c", f"mysql -p{REDACTED} db"]),
        (["app", "--token", "$TOKEN"], ["app", "--token", "$TOKEN"]),
        (["app", "--token-file", "/run/t"], ["app", "--token-file", "/run/t"]),
        (["npm", "run", "dev"], ["npm", "run", "dev"]),
        # An agent's conversation id is what its resume needs, not a secret.
        (["claude", "--session-id", "7f0c8e2a-1b2c-4d5e-8f90-123456789abc"], None),
        (["curl", "--cookie-jar", "jar.txt", "https://x"], None),
        (["gh", "auth", "login", "--with-token"], ["gh", "auth", "login", "--with-token"]),
    ],
)
def test_argv_keeps_boundaries(argv: list[str], expected: list[str] | None) -> None:
    out = redact_argv(argv)
    assert out == (argv if expected is None else expected)
    assert is_redacted(out) == (out != argv)


def test_lines_json_and_helpers() -> None:
    lines = ["$ cat key.pem", *PEM.split("\n"), "$ echo done"]
    out = redact_lines(lines)
    assert KEY_BODY not in "\n".join(out)
    assert out[0] == "$ cat key.pem" and out[-1] == "$ echo done"
    plain = ["a", "b"]
    assert redact_lines(plain) is not None and redact_lines(plain) == plain
    doc: dict[str, Any] = {"password": "x", "steps": [f"pushed with {GH}"], "n": 3, "ok": None}
    red = redact_json(doc)
    assert GH not in str(red) and red["n"] == 3 and red["ok"] is None
    assert red["password"] == "x"  # a value alone carries no name: only shapes are found
    assert not is_redacted(None) and not is_redacted(["ls"])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable, max_size=200))
def test_redaction_is_idempotent_and_never_grows_a_secret(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
    assert redact_argv(redact_argv(text.split())) == redact_argv(text.split())


# --- linear time ---------------------------------------------------------------------------------

# Fragments each pattern starts on or consumes; repeated, they are what makes a backtracking
# pattern quadratic (or worse).
ADVERSARIAL_UNITS = [
    "a", "eyJ", "eyJaaaaaaaaa.", "ghp_", "sk-", "SG.", "hvs.", "AKIA", "token", "tokenA", "password",
    "password=", 'password="', "password='", '"password": "', "pass=", "--password ", "--token ",
    "a:", "https://", "://", "://a:", "https://a:b", "@", "a@", "Authorization: ", "authorization:",
    "Bearer ", "bearer a", "Cookie: ", "AccountKey=", "Pwd=", "sig=", "mysql ", "mysql -p", "-p",
    "curl -u a:", "docker login ", "openssl -pass ", "zip -P ", "sshpass -p'", "-----BEGIN ",
    "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----\n", "AAAAAAAAAAAAAAAAAAAAAAAA\n",
    "x" * 63 + "token", "a" * 70 + "=", "_", "-", "=", '"', "'", "\\", '"\\', "api_key",
]  # fmt: skip
ADVERSARIAL_SIZE = 200_000


@pytest.mark.timeout(120)
def test_hostile_input_is_redacted_in_linear_time() -> None:
    """200 KB of each fragment: linear patterns take milliseconds each; one quadratic pattern
    would take hours, and the timeout fails the test (no timing is asserted, only completion)."""
    for unit in ADVERSARIAL_UNITS:
        text = (unit * (ADVERSARIAL_SIZE // len(unit) + 1))[:ADVERSARIAL_SIZE]
        redact_text(text)
        redact_lines(text.split("\n"))
        redact_argv(["mysql", text, "--password", text])
        redact_text(text + "\n" + text.upper())


def _nested_repeat(pattern: re.Pattern[str]) -> bool:
    """True when a quantifier sits inside another one (e.g. ``(a+)*``): the shape that backtracks
    exponentially. A single-character body (``(?:[^"]|\\\\.){0,n}``) is fine: each iteration
    consumes a bounded amount."""
    from re import _parser  # type: ignore[attr-defined]

    tree = _parser.parse(pattern.pattern, pattern.flags)

    def children(op: Any, av: Any) -> list[Any]:
        if op == _parser.SUBPATTERN:
            return [av[-1]]
        if op == _parser.ATOMIC_GROUP:
            return [av]
        if op == _parser.BRANCH:
            return list(av[1])
        if op in (_parser.ASSERT, _parser.ASSERT_NOT):
            return [av[1]]
        return []

    def walk(items: Any, inside: bool) -> bool:
        for op, av in items.data if hasattr(items, "data") else items:
            if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT):
                _lo, hi, sub = av
                many = hi is _parser.MAXREPEAT or hi > 1
                if (many and inside) or walk(sub, inside or many):
                    return True
            elif any(walk(child, inside) for child in children(op, av)):
                return True
        return False

    return walk(tree, False)


def test_no_pattern_nests_quantifiers() -> None:
    patterns = [v.compiled() for v in vars(redact).values() if isinstance(v, LazyPattern)]
    patterns += [redact._flag_re(rule) for rule in redact._PROGRAM_RULES.values()]
    assert len(patterns) > 10
    nested = [p.pattern[:80] for p in patterns if _nested_repeat(p)]
    assert nested == []


def test_the_servers_log_file_is_redacted(tmp_path: Any) -> None:
    import logging

    from tether.cli.lsp import _PrivateRotatingHandler

    handler = _PrivateRotatingHandler(tmp_path / "lsp.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "checkpoint failed: %s", (f"push {GH}",), None
    )
    handler.emit(record)
    handler.close()
    text = (tmp_path / "lsp.log").read_text()
    assert GH not in text and f"push {REDACTED}" in text


def test_stored_text_is_cleaned_before_and_cut_after_redaction() -> None:
    from tether.agent.model import safe_text

    # An escape sequence splitting a name must not hide the value once the text is cleaned.
    assert "hunter2" not in safe_text("pass\x1b[0mword=hunter2 done")
    # Cutting happens after: a token that would lose its shape when cut is still found.
    out = safe_text("x" * 100 + f" {GH}", 110)
    assert GH[:8] not in out and len(out) <= 110

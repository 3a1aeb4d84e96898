"""Secret redaction: the one place that decides what Tether never stores in clear.

Every path that stores text calls this module: environment values (tmux_env.py), the command
lines saved for re-run (argv), typed shell history and the live history files, scrollback,
``tether run`` argv, output tail and checkpoint message, step and task text, hook messages,
every checkpoint message (store.py), the hand-off side files (remote/export.py) and the server's
log file. A value is replaced by ``[REDACTED]``; the name in front of it (``GITHUB_TOKEN=``,
``--password=``, ``Authorization: Bearer``) is kept, so a reader still sees *that* a secret was
there.

What is recognised:

- private key blocks (PEM, OpenSSH, PGP), also a block whose ``BEGIN`` line scrolled away;
- credentials in URLs (``scheme://user:pass@``, ``scheme://:pass@``);
- connection-string keys (``AccountKey=``, ``SharedAccessSignature=``, ``Password=``, ``Pwd=``…);
- ``Authorization:`` headers and ``Bearer <token>``;
- ``name=value``, ``name: value``, ``"name": "value"`` and ``--flag value`` where the name says
  password, secret, token, api key, access key, private key, credential, auth, cookie…;
- per-program password flags: ``mysql -pPW``, ``sshpass -p PW``, ``curl -u user:PW``,
  ``docker login -p PW``, ``7z -pPW``, ``zip -P PW``, ``openssl … -passin pass:PW``;
- token shapes whatever their name (GitHub, GitLab, OpenAI, Anthropic, Slack, AWS, Google,
  Stripe, Hugging Face, npm, PyPI, Docker Hub, SendGrid, JWTs…).

Every pattern runs in linear time on hostile input: each starts at a word boundary (a
look-behind, so a long run is entered once, not at every character), quantifiers over a
character class are possessive or bounded, and no quantifier is nested in another. Python's
``re`` backtracks; these rules are what keeps a megabyte of crafted scrollback from taking hours.

Pure: no I/O, patterns compiled once at import.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence

from tether.text import LazyPattern

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REDACTED = "[REDACTED]"


# --- variable names --------------------------------------------------------------------------

# An environment variable whose *name* matches one of these is a secret, whatever its value.
SECRET_NAME_PATTERNS: tuple[str, ...] = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PASS$",
    "PWD$",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "SESSION_ID",
    "SIGNATURE",
    "_DSN$",
    "DATABASE_URL",
    "CONNECTION_STRING",
)
# Ends in PWD but is a directory, not a password.
_NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})


def secret_name_re(extra: Iterable[str] = ()) -> re.Pattern[str]:
    """Names of secret variables: the built-in patterns plus the user's ``envSecretPatterns``."""
    return re.compile("|".join((*SECRET_NAME_PATTERNS, *extra)), re.IGNORECASE)


_DEFAULT_NAME_RE = LazyPattern("|".join(SECRET_NAME_PATTERNS), re.IGNORECASE)


def is_secret_name(name: str, extra: Sequence[str] = ()) -> bool:
    if name in _NOT_SECRET_NAMES:
        return False
    if extra:
        return secret_name_re(extra).search(name) is not None
    return _DEFAULT_NAME_RE.search(name) is not None


# --- token shapes ------------------------------------------------------------------------------

# Each starts at a boundary (not inside a longer word) and consumes its class possessively.
_B = r"(?<![A-Za-z0-9_\-])"
_TOKEN_PATTERNS: tuple[str, ...] = (
    r"gh[pousr]_[A-Za-z0-9]{20,}+",  # GitHub
    r"github_pat_[A-Za-z0-9_]{20,}+",
    r"glpat-[A-Za-z0-9_\-]{20,}+",  # GitLab
    r"sk-[A-Za-z0-9_\-]{16,}+",  # OpenAI (sk-proj-…), Anthropic (sk-ant-…), DeepSeek…
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}+",  # Stripe
    r"xox[abposr]-[A-Za-z0-9\-]{10,}+",  # Slack
    r"xapp-[A-Za-z0-9\-]{10,}+",
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}(?![A-Za-z0-9])",  # AWS key ids
    r"AIza[0-9A-Za-z_\-]{35}+",  # Google API key
    r"ya29\.[0-9A-Za-z_\-]{20,}+",  # Google OAuth access token
    r"GOCSPX-[0-9A-Za-z_\-]{20,}+",  # Google OAuth client secret
    r"npm_[A-Za-z0-9]{36}+",
    r"pypi-[A-Za-z0-9_\-]{50,}+",
    r"hf_[A-Za-z0-9]{30,}+",  # Hugging Face
    r"dckr_pat_[A-Za-z0-9_\-]{20,}+",  # Docker Hub
    r"gsk_[A-Za-z0-9]{40,}+",  # Groq
    r"r8_[A-Za-z0-9]{30,}+",  # Replicate
    r"dop_v1_[a-f0-9]{40,}+",  # DigitalOcean
    r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}+",  # Shopify
    r"lin_api_[A-Za-z0-9]{30,}+",  # Linear
    r"hvs\.[A-Za-z0-9_\-]{20,}+",  # HashiCorp Vault
    r"SG\.[A-Za-z0-9_\-]{16,}+\.[A-Za-z0-9_\-]{16,}+",  # SendGrid
    r"AGE-SECRET-KEY-1[0-9A-Z]{50,}+",
    r"eyJ[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]{8,}+",  # JWT
)
TOKEN_RE = LazyPattern(_B + "(?:" + "|".join(_TOKEN_PATTERNS) + ")")
# Cheap pre-filter for TOKEN_RE: one of these substrings must be present.
_TOKEN_HINTS = (
    "gh", "_pat_", "glpat-", "sk-", "sk_", "rk_", "xox", "xapp-", "AKIA", "ASIA", "AGPA", "AIDA",
    "AROA", "ANPA", "AIza", "ya29.", "GOCSPX-", "npm_", "pypi-", "hf_", "gsk_", "r8_", "dop_v1_",
    "shp", "lin_api_", "hvs.", "SG.", "AGE-SECRET", "eyJ",
)  # fmt: skip

# --- private keys ------------------------------------------------------------------------------

_KEY_LABEL = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?"
_PEM_RE = LazyPattern(
    rf"-----BEGIN {_KEY_LABEL}-----.*?(?:-----END {_KEY_LABEL}-----|\Z)",
    re.DOTALL,
)
_PEM_END_RE = LazyPattern(rf"-----END {_KEY_LABEL}-----")
_BASE64_LINE_RE = LazyPattern(r"[A-Za-z0-9+/=]{16,}+")
_ARMOR_HEADER_RE = LazyPattern(r"[A-Za-z][A-Za-z\-]{0,30}: .{0,200}")  # "Version: GnuPG v2", "Comment: …"

# --- URLs, headers, connection strings -------------------------------------------------------

# scheme://user:password@host and scheme://:password@host (the user part may be empty). The
# password runs to the last `@` of the word (an unencoded `@` in it is common); the backtracking
# that takes is bounded, and a URL is entered once, at its scheme.
_URL_CRED_RE = LazyPattern(
    r"(?<![A-Za-z0-9+.\-])(?P<pre>[A-Za-z][A-Za-z0-9+.\-]{0,30}+://[^\s/:@'\"]{0,256}+:)"
    r"(?P<pw>[^\s/'\"]{1,1024})(?P<at>@)"
)
# Authorization / Proxy-Authorization / Cookie headers: everything up to the end of the line or
# the closing quote (`-H 'Authorization: Bearer …'`, `"Authorization": "Basic …"`).
_AUTH_HEADER_RE = LazyPattern(
    r"(?<![A-Za-z0-9_\-])(?P<name>(?:(?:proxy-)?authorization|set-cookie|cookie)[\"']?+[ \t]{0,8}+[:=]"
    r"[ \t]{0,8}+[\"']?+)"
    r"(?P<scheme>(?:bearer|basic|token|digest|negotiate|aws4-hmac-sha256|ntlm|apikey)[ \t]{1,8}+)?"
    r"(?P<value>[^\s'\"][^\r\n'\"]{0,4096}+)",
    re.IGNORECASE,
)
# A bare `Bearer <token>` (e.g. `-H "X-Token: Bearer …"`, a log line).
_BEARER_RE = LazyPattern(
    r"(?<![A-Za-z0-9_\-])(?P<name>bearer[ \t]{1,8}+)(?P<value>[A-Za-z0-9._~+/\-]{8,4096}+=*+)",
    re.IGNORECASE,
)
# Connection strings: Key=value;Key=value. The value runs to the next `;` (a SAS signature
# holds `&`).
_CONN_RE = LazyPattern(
    r"(?<![A-Za-z0-9_])(?P<name>(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd"
    r"|AccessKey|SecretKey|ClientSecret|ApiKey|Sig)[ \t]{0,4}+=[ \t]{0,4}+)"
    r"(?P<value>[^;\s'\"=$][^;\s'\"]{0,4096}+)",
    re.IGNORECASE,
)

# --- name = value ------------------------------------------------------------------------------

_NAME_CH = r"[A-Za-z0-9_.\-]"
# The words that make a name secret. `auth` but not `author`; `token` but not `tokens`/`tokenizer`.
_KEYWORDS = (
    r"passw(?:or)?d|passphrase|secret|token(?!s(?![A-Za-z])|iz|is)|api[_\-]?key|access[_\-]?key"
    r"|private[_\-]?key|signing[_\-]?key|encryption[_\-]?key|master[_\-]?key|credential"
    r"|auth(?!or)|accountkey|sharedaccess|cookie"
)
# `pass`, `pwd`, `pw`, `sig` count only as a whole segment of the name and only before `=`.
_SHORT_KEYWORDS = r"(?<![A-Za-z])(?:pass|pwd|pw|sig)(?![A-Za-z])"
_ASSIGN_RE = LazyPattern(
    rf"(?<!{_NAME_CH})(?=[\"']?+{_NAME_CH}{{0,64}}?(?:{_KEYWORDS}|{_SHORT_KEYWORDS}))"
    rf"(?P<name>[\"']?+{_NAME_CH}{{1,96}}+[\"']?+)"
    r"(?P<sep>[ \t]{0,16}+[=:][ \t]{0,16}+|[ \t]{1,16}+)"
    r"(?P<value>\"(?:[^\"\\\n]|\\.){0,4096}+(?:\"|(?=\n)|\Z)"
    r"|'[^'\n]{0,4096}+(?:'|(?=\n)|\Z)"
    r"|[^\s'\"=:;&,<>|$`(){}\[\]][^\s'\";&,]{0,4096}+)",
    re.IGNORECASE,
)
_KEYWORD_RE = LazyPattern(_KEYWORDS, re.IGNORECASE)
_SHORT_KEYWORD_RE = LazyPattern(_SHORT_KEYWORDS, re.IGNORECASE)
# A flag whose argument names where the secret is, not the secret: --token-file, --password-stdin…
_REFERENCE_SUFFIX_RE = LazyPattern(
    r"[_\-.](?:file|path|dir|env|var|name|id|type|stdin|length|len|prompt|helper|cmd|command|url"
    r"|uri|endpoint|store|source|mode|count|limit|expiry|ttl|header|provider|jar)$",
    re.IGNORECASE,
)
# Triggers of the name = value rule (lower-case substrings).
_ASSIGN_HINTS = (
    "pass", "pwd", "pw", "sig", "secret", "token", "key", "credential", "auth", "cookie", "session",
)  # fmt: skip

# --- per-program flags -------------------------------------------------------------------------

# program -> (flags, attached value allowed, separate value allowed, value holds user:password)
_ProgRule = tuple[tuple[str, ...], bool, bool, str]
_MYSQL = (("-p",), True, False, "plain")
_PROGRAM_RULES: dict[str, _ProgRule] = {
    **dict.fromkeys(
        (
            "mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlcheck", "mysqlshow",
            "mysqlpump", "mysqlslap", "mysqlsh", "mariadb", "mariadb-dump", "mariadb-admin",
            "mariadb-import", "mariadb-check", "mariadb-show", "mariadb-slap",
        ),
        _MYSQL,
    ),
    "sshpass": (("-p",), True, True, "plain"),
    "7z": (("-p",), True, False, "plain"),
    "7za": (("-p",), True, False, "plain"),
    "7zr": (("-p",), True, False, "plain"),
    "zip": (("-P",), False, True, "plain"),
    "unzip": (("-P",), False, True, "plain"),
    "curl": (("-u", "--user", "-U", "--proxy-user"), True, True, "userpass"),
    "openssl": (("-passin", "-passout", "-pass", "-k"), False, True, "openssl"),
    # `docker login -p PW` (the `login` subcommand is checked where the rule is applied)
    "docker login": (("-p",), True, True, "plain"),
    "podman login": (("-p",), True, True, "plain"),
    "nerdctl login": (("-p",), True, True, "plain"),
    "buildah login": (("-p",), True, True, "plain"),
    "helm login": (("-p",), True, True, "plain"),
}  # fmt: skip
_LOGIN_PROGRAMS = frozenset(p.split()[0] for p in _PROGRAM_RULES if " " in p)
_PROGRAM_NAMES = sorted({p.split()[0] for p in _PROGRAM_RULES}, key=len, reverse=True)
# A program name as a command word (also /usr/bin/mysql); its segment runs to ; | & or newline.
_PROGRAM_RE = LazyPattern(
    r"(?<![A-Za-z0-9_.\-])(?P<prog>"
    + "|".join(re.escape(p) for p in _PROGRAM_NAMES)
    + r")(?![A-Za-z0-9_\-])(?P<login>[ \t]{1,8}+(?:registry[ \t]{1,8}+)?login(?![A-Za-z0-9_\-]))?"
)
_SEGMENT_END_RE = LazyPattern(r"[;|&\n]")
# One shell word: quoted or bare.
_WORD = r"(?:'[^'\n]{0,4096}+'|\"(?:[^\"\\\n]|\\.){0,4096}+\"|[^\s'\";|&]{1,4096}+)"
# A value glued to its flag (`-pPW`): not another flag, not `=`.
_ATTACHED = r"(?:'[^'\n]{0,4096}+'|\"(?:[^\"\\\n]|\\.){0,4096}+\"|[^\s'\";|&=\-][^\s;|&]{0,4096}+)"

# --- free text ---------------------------------------------------------------------------------


def redact_text(text: str) -> str:
    """Replace the secrets in free text (one line or many) with ``[REDACTED]``."""
    if not text:
        return text
    low = text.lower()
    if "private key" in low:
        text = _redact_keys(text)
    if "://" in text:
        text = _URL_CRED_RE.sub(_keep("pre", "at"), text)
    if "authorization" in low or "cookie" in low:
        text = _AUTH_HEADER_RE.sub(_auth_header, text)
    if "bearer" in low:
        text = _BEARER_RE.sub(_bearer, text)
    if "=" in text:
        text = _CONN_RE.sub(_conn, text)
    if any(p in low for p in _PROGRAM_NAMES) and "-" in text:
        text = _redact_program_flags(text)
    if any(h in low for h in _ASSIGN_HINTS):
        text = _ASSIGN_RE.sub(_assign, text)
    if any(h in text for h in _TOKEN_HINTS):
        text = TOKEN_RE.sub(REDACTED, text)
    return text


def redact_lines(lines: Iterable[str]) -> list[str]:
    """Redact a block of lines (scrollback, a history file): a key block spans lines, so the
    block is redacted as one text. A key block becomes one line."""
    lines = list(lines)
    joined = "\n".join(lines)
    out = redact_text(joined)
    return lines if out == joined else out.split("\n")


def contains_secret(text: str) -> bool:
    return redact_text(text) != text


def is_redacted(argv: Sequence[str] | None) -> bool:
    """True when a stored command had a secret taken out: it must never run as is."""
    return argv is not None and any(REDACTED in a for a in argv)


def redact_json(value: Any) -> Any:
    """Every string in a JSON document redacted (keys are kept: they are names)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    return value


# --- argv --------------------------------------------------------------------------------------


def redact_argv(argv: Sequence[str]) -> list[str]:
    """An argv with its secrets replaced, argument boundaries kept.

    Beyond :func:`redact_text` on each argument, a flag that names a secret takes the *next*
    argument as its value (``--password PW``, ``--token TOK``), and per-program flags apply
    (``mysql -pPW``, ``sshpass -p PW``, ``curl -u user:PW``…), also behind ``sudo``, ``env`` or
    ``docker exec … --``.
    """
    out = list(argv)
    rule: _ProgRule | None = None
    i = 0
    while i < len(out):
        arg = out[i]
        base = os.path.basename(arg)
        if base in _PROGRAM_RULES or base in _LOGIN_PROGRAMS:
            login = i + 1 < len(out) and (
                out[i + 1] == "login"
                or (out[i + 1] == "registry" and i + 2 < len(out) and out[i + 2] == "login")
            )
            rule = _PROGRAM_RULES.get(f"{base} login") if login else _PROGRAM_RULES.get(base)
            i += 1
            continue
        if rule is not None and arg.startswith("-"):
            taken = _apply_rule_argv(rule, out, i)
            if taken:
                i += taken
                continue
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("-") and value and not value.startswith("$") and _secret_flag(flag):
            out[i] = f"{flag}={REDACTED}"  # the whole argument after `=` is the value, spaces too
            i += 1
            continue
        if arg.startswith("-") and "=" not in arg and i + 1 < len(out) and _secret_flag(arg):
            nxt = out[i + 1]
            if nxt and not nxt.startswith(("-", "$")) and nxt != REDACTED:
                out[i] = redact_text(arg)
                out[i + 1] = REDACTED
                i += 2
                continue
        out[i] = redact_text(arg)
        i += 1
    return out


def _secret_flag(flag: str) -> bool:
    name = flag.lstrip("-")
    if not name or _REFERENCE_SUFFIX_RE.search(name):
        return False
    return _KEYWORD_RE.search(name) is not None or _SHORT_KEYWORD_RE.fullmatch(name) is not None


def _apply_rule_argv(rule: _ProgRule, out: list[str], i: int) -> int:
    """Apply a program's password flag at ``out[i]``; the number of arguments consumed (0: none)."""
    flags, attached, separate, kind = rule
    arg = out[i]
    for flag in flags:
        if arg == flag and separate and i + 1 < len(out):
            out[i + 1] = _rule_value(out[i + 1], kind)
            return 2
        if attached and arg.startswith(flag) and len(arg) > len(flag) and not arg.startswith("--"):
            value = arg[len(flag) :].removeprefix("=")
            out[i] = flag + _rule_value(value, kind)
            return 1
    return 0


def _rule_value(value: str, kind: str) -> str:
    if kind == "userpass":
        user, sep, pw = value.partition(":")
        return f"{user}:{REDACTED}" if sep and pw else value
    if kind == "openssl":
        scheme, sep, pw = value.partition(":")
        return f"{scheme}:{REDACTED}" if sep and scheme == "pass" else value if sep else REDACTED
    return REDACTED if value else value


def _redact_program_flags(text: str) -> str:
    """``mysql -pPW`` and friends in free text: the flag is looked for only in the segment that
    follows the program's name (up to ``;``, ``|``, ``&`` or the end of the line)."""
    out: list[str] = []
    pos = 0
    for m in _PROGRAM_RE.finditer(text):
        if m.start() < pos:
            continue
        prog = m["prog"]
        rule = _PROGRAM_RULES.get(f"{prog} login") if m["login"] else _PROGRAM_RULES.get(prog)
        if rule is None:
            continue
        end_m = _SEGMENT_END_RE.search(text, m.end(), m.end() + 8192)
        end = end_m.start() if end_m else min(len(text), m.end() + 8192)
        out.append(text[pos : m.end()])
        out.append(_flag_re(rule).sub(functools.partial(_flag_sub, rule=rule), text[m.end() : end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


_FLAG_RES: dict[tuple[tuple[str, ...], bool, bool], re.Pattern[str]] = {}


def _flag_re(rule: _ProgRule) -> re.Pattern[str]:
    flags, attached, separate, _ = rule
    key = (flags, attached, separate)
    pattern = _FLAG_RES.get(key)
    if pattern is None:
        alts = "|".join(re.escape(f) for f in sorted(flags, key=len, reverse=True))
        forms = []
        if separate:
            forms.append(rf"(?P<flag>{alts})(?P<sep>[ \t]{{1,8}}+|=)(?P<value>{_WORD})")
        if attached:
            single = [f for f in flags if not f.startswith("--")]
            if single:
                short = "|".join(re.escape(f) for f in sorted(single, key=len, reverse=True))
                forms.append(rf"(?P<aflag>{short})(?P<avalue>{_ATTACHED})")
        pattern = _FLAG_RES[key] = re.compile(rf"(?<![^\s])(?:{'|'.join(f'(?:{f})' for f in forms)})")
    return pattern


def _flag_sub(m: re.Match[str], rule: _ProgRule) -> str:
    kind = rule[3]
    if m.groupdict().get("flag"):
        value = m["value"]
        q = value[0] if value[:1] in ("'", '"') and len(value) > 1 and value[-1] == value[0] else ""
        inner = value[1:-1] if q else value
        return f"{m['flag']}{m['sep']}{q}{_rule_value(inner, kind)}{q}"
    value = m["avalue"]
    q = value[0] if value[:1] in ("'", '"') and len(value) > 1 and value[-1] == value[0] else ""
    inner = value[1:-1] if q else value
    return f"{m['aflag']}{q}{_rule_value(inner, kind)}{q}"


# --- replacement callbacks ---------------------------------------------------------------------


def _keep(*groups: str) -> Any:
    """A replacement keeping ``groups`` (in order) around a redacted middle."""

    def sub(m: re.Match[str]) -> str:
        if len(groups) == 2:
            return f"{m[groups[0]]}{REDACTED}{m[groups[1]]}"
        return f"{m[groups[0]]}{REDACTED}"

    return sub


def _conn(m: re.Match[str]) -> str:
    value = m["value"]
    if value.startswith((REDACTED, "$")) or (m["name"][:3].lower() == "pwd" and value.startswith(("/", "~"))):
        return m.group(0)  # PWD=/a/dir is a directory
    return f"{m['name']}{REDACTED}"


def _auth_header(m: re.Match[str]) -> str:
    if m["value"].startswith((REDACTED, "$")):
        return m.group(0)
    return f"{m['name']}{m['scheme'] or ''}{REDACTED}"


def _bearer(m: re.Match[str]) -> str:
    value = m["value"]
    return f"{m['name']}{REDACTED}" if _looks_secret_value(value) or len(value) >= 20 else m.group(0)


def _assign(m: re.Match[str]) -> str:
    name, sep, value = m["name"], m["sep"], m["value"]
    bare = name.strip("\"'")
    if value.startswith(REDACTED) or value.strip("\"'").startswith((REDACTED, "$")) or not value.strip("\"'"):
        return m.group(0)
    if _KEYWORD_RE.search(bare) is None and (
        # pass / pwd / pw / sig: only `NAME=value`, and PWD=/a/dir is a directory.
        "=" not in sep or bare.upper() in _NOT_SECRET_NAMES or value.startswith(("/", "~", "."))
    ):
        return m.group(0)
    if _REFERENCE_SUFFIX_RE.search(bare):
        return m.group(0)  # --token-file PATH, SECRET_NAME=…: where the secret is, not the secret
    if sep.isspace() and (value.startswith("-") or not (bare.startswith("-") or _looks_secret_value(value))):
        # `auth module` in prose: a space separator counts only after a flag or for a
        # token-looking value.
        return m.group(0)
    q = value[0] if value[0] in "\"'" else ""
    closed = q and len(value) > 1 and value.endswith(q)
    return f"{name}{sep}{q}{REDACTED}{q if closed else ''}"


def _looks_secret_value(value: str) -> bool:
    v = value.strip("\"'")
    return len(v) >= 8 and any(c.isdigit() for c in v) and any(c.isalpha() for c in v)


def _redact_keys(text: str) -> str:
    """Private key blocks, and the tail of one whose BEGIN line is no longer in the text."""
    text = _PEM_RE.sub(REDACTED, text)
    if _PEM_END_RE.search(text) is None:
        return text
    out: list[str] = []
    pos = 0
    for m in _PEM_END_RE.finditer(text):
        before = text[pos : m.start()]
        lines = before.split("\n")
        # The END marker's own line starts at lines[-1]; walk back over base64/armor lines.
        k = len(lines) - 1
        while k > 0 and (
            _BASE64_LINE_RE.fullmatch(lines[k - 1].strip())
            or _ARMOR_HEADER_RE.fullmatch(lines[k - 1].strip())
            or not lines[k - 1].strip()
        ):
            k -= 1
        out.append("\n".join([*lines[:k], lines[-1]]) if k < len(lines) - 1 else before)
        out.append(REDACTED)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


__all__ = [
    "REDACTED",
    "SECRET_NAME_PATTERNS",
    "TOKEN_RE",
    "contains_secret",
    "is_redacted",
    "is_secret_name",
    "redact_argv",
    "redact_json",
    "redact_lines",
    "redact_text",
    "secret_name_re",
]


# Files whose content is never exported, and whose unsaved text is never written to the store,
# whatever .gitignore says (the editor model and the hand-off export both ask).
SECRET_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".age", ".gpg")
SECRET_NAMES = frozenset({".netrc", ".pgpass", ".npmrc", ".pypirc", "credentials", ".htpasswd"})


def looks_secret(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1].lower()
    return (
        name == ".env"
        or name.startswith(".env.")
        or name.endswith(".env")
        or name in SECRET_NAMES
        or name.startswith(("id_rsa", "id_ed25519", "id_ecdsa", "id_dsa"))
        or name.endswith(SECRET_SUFFIXES)
    )

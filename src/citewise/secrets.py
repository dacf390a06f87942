"""Secrets never in URLs, and never in what citewise prints.

:func:`check_no_secrets` refuses a setting whose URL or DSN carries a credential — a
``user:password@`` part, a ``password=`` / ``sslpassword=`` (or other secret-named) query
parameter, percent-encoded or not, or a libpq keyword DSN's ``password=`` — and names
where the secret belongs instead. :func:`redact_url` masks the same parts wherever they
occur in a piece of text, for every message, log line and table that may show a URL.
"""

from __future__ import annotations

import logging
import re
from contextlib import suppress
from urllib.parse import unquote, urlsplit

from .errors import ConfigError

MASK = "***"

# Parameter names (after percent-decoding, lower-cased, without ``_ - .`` and spaces)
# whose values are secrets: libpq's password and sslpassword, redis-py's password and
# ssl_password, and the usual API credentials.
_SECRET_NAMES = {"pass", "pwd", "apikey", "accesskey", "secretkey"}
# In a URL's query also these (Google's ?key=, a signed URL's sig=); a "key=" word in a
# log line is usually a name.
_QUERY_SECRET_NAMES = _SECRET_NAMES | {"key", "sig", "auth"}
_SECRET_SUFFIXES = ("password", "passwd", "pwd", "secret", "token", "credential", "credentials")

# scheme://user:PASSWORD@ — the password runs to the last "@" before a space or quote, so
# a password holding a raw "@", "/" or ":" is masked whole (at worst, more is masked).
_USERINFO = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"<>]*:)(?P<secret>[^\s'\"<>]*)(?=@)"
)
# ?name=VALUE / &name=VALUE / #name=VALUE / ;name=VALUE in a URL.
_QUERY = re.compile(r"(?<=[?&#;])(?P<key>[A-Za-z0-9_.%+\-]+)(?P<eq>=)(?P<value>[^&#;\s'\"<>]*)")
# name=VALUE as a word of its own: a libpq keyword DSN ("host=db password='x y'").
_KEYWORD = re.compile(
    r"(?<![^\s(,;'\"\[{])(?P<key>[A-Za-z0-9_.%+\-]+)(?P<eq>[ \t]*=[ \t]*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"[^\"]*\"?|[^\s]*)"
)


def is_secret_name(name: str, query: bool = False) -> bool:
    """Whether a DSN keyword (or with ``query``, a URL query parameter), as written and
    maybe percent-encoded, names a secret: ``password``, ``sslpassword``, ``PassWord``,
    ``pass%77ord``…"""
    normal = re.sub(r"[\s_.\-+]", "", unquote(unquote(name))).lower()
    names = _QUERY_SECRET_NAMES if query else _SECRET_NAMES
    return normal in names or normal.endswith(_SECRET_SUFFIXES)


def redact_url(text: str) -> str:
    """``text`` with every password-like part of the URLs and DSNs in it masked:
    userinfo passwords and the values of secret-named parameters and keywords."""
    if not text:
        return text

    def userinfo(match: re.Match[str]) -> str:
        return match["head"] + (MASK if match["secret"] else "")

    def parameter(match: re.Match[str], query: bool = False) -> str:
        if not match["value"] or not is_secret_name(match["key"], query):
            return match[0]
        return f"{match['key']}{match['eq']}{MASK}"

    text = _USERINFO.sub(userinfo, text)
    text = _QUERY.sub(lambda match: parameter(match, query=True), text)
    return _KEYWORD.sub(parameter, text)


def secrets_in(value: str) -> list[str]:
    """What in ``value`` is a credential, described without the secret itself."""
    found = []
    has_userinfo_password = any(m["secret"] for m in _USERINFO.finditer(value))
    if not has_userinfo_password and "://" in value:
        with suppress(ValueError):  # not a URL urlsplit reads
            has_userinfo_password = bool(urlsplit(value).password)  # "user:@" holds none
    if has_userinfo_password:
        found.append("a password in its user:password@ part")
    for pattern, query in ((_QUERY, True), (_KEYWORD, False)):
        for match in pattern.finditer(value):
            if is_secret_name(match["key"], query):
                found.append(f"a {match['key']!r} parameter")
    return list(dict.fromkeys(found))


# Where each kind of setting's secret belongs instead.
POSTGRES_SECRETS = "set PGPASSWORD or put the password in a ~/.pgpass file (PGPASSFILE moves it)"
# No setting carries a TLS client key's passphrase (libpq reads sslpassword only from the
# connection string).
_SSL_KEY_NOTE = (
    "; citewise takes no passphrase for a TLS client key: use a key file without one, "
    "readable only by the user citewise runs as"
)
REDIS_SECRETS = "set REDIS_PASSWORD (the user name, if any, may stay in the URL)"
API_SECRETS = "name the environment variable holding the key in api_key_env, or use api_key_file"


def check_no_secrets(value: str, setting: str, instead: str) -> None:
    """Refuse ``value`` (a URL or DSN for ``setting``) when it carries a credential; the
    message names the setting and where the secret belongs, never the secret."""
    found = secrets_in(value)
    if found:
        if any("ssl" in unquote(unquote(part)).lower() for part in found):
            instead += _SSL_KEY_NOTE
        raise ConfigError(
            f"{setting} holds a secret ({', '.join(found)}); secrets never go in a URL: "
            f"remove it and {instead}"
        )


class RedactingFilter(logging.Filter):
    """A handler filter masking URL secrets in log records, tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it as it would
            return True
        masked = redact_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_url(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_url(record.stack_info)
        return True


def redact_logs(handler: logging.Handler) -> None:
    """Mask URL secrets in everything ``handler`` writes (once per handler)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


__all__ = [
    "API_SECRETS",
    "POSTGRES_SECRETS",
    "REDIS_SECRETS",
    "RedactingFilter",
    "check_no_secrets",
    "is_secret_name",
    "redact_logs",
    "redact_url",
    "secrets_in",
]

"""The one masking rule for every place a source or data text is shown.

Used by the CLI (stdout, stderr), ``results.json`` (the whole document, before it is written),
the reports (HTML, Excel, PDF), validation examples and connector errors:

* :func:`mask_url`: secrets of connection strings. In a URL the userinfo password and the value
  of **every query or fragment parameter whose name is not on a short allow-list** of harmless
  names (``sslmode``, ``host``, ``port`` ...): unknown names may carry a secret (``sslpassword``,
  ``token``, ``sig``, ``X-Amz-Signature``, ``credentials_base64`` ...), so they are hidden by
  default. Outside URLs (libpq keyword strings, driver messages, dict reprs) the value of any
  ``name=value`` or ``'name': 'value'`` whose name looks like a secret.
* :func:`redact_emails`: e-mail addresses.
* :func:`redact`: both; :func:`redact_document`: both over every key and string of a JSON-like
  document.

Examples
--------
>>> redact("postgresql://roi:s3cret@db/x?sslmode=require&sslpassword=k, owner a.b@example.com")
'postgresql://roi:***@db/x?sslmode=require&sslpassword=***, owner [e-mail removed]'
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
EMAIL_REMOVED = "[e-mail removed]"

# Query parameters that never carry a secret; every other parameter's value is masked.
SAFE_PARAMETERS = frozenset({
    "sslmode", "host", "hostaddr", "port", "dbname", "database", "db", "schema", "warehouse",
    "role", "application_name", "connect_timeout", "driver", "user", "username", "charset",
    "encoding", "client_encoding", "timezone", "target_session_attrs", "gssencmode",
    "channel_binding", "read_only", "access_mode", "account", "region", "project", "dataset",
    "catalog", "encrypt", "trustservercertificate", "trusted_connection", "authentication",
    "authsource", "replicaset", "ssl", "tls", "protocol", "mode", "threads", "memory_limit",
    "http_path",
})

# A URL: scheme:// then everything up to white space or a quote, less trailing punctuation of
# the sentence around it ("... ?sslmode=require: connection refused").
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>`]*[^\s'\"<>`.,:;)\]]")
# user:password@ of a URL; the password runs to the *last* '@' before the host, as SQLAlchemy
# reads it, so an unencoded '@' in a password is masked whole.
_USERINFO = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>.*?)@"
                       r"(?=[^@/?#]*(?:[/?#]|$))")
_PARAMETER = re.compile(r"(?P<sep>[?&;#])(?P<name>[^=&;#?]+)=(?P<value>[^&;#]*)")
# Names that look like a secret, for text outside URLs.
_SECRET_WORDS = (r"[\w.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|"
                 r"private[_\-]?key|credential|signature|auth)[\w.\-]*|key|sig|sas")
# Quoted, or up to a separator (a trailing '.' or ':' ends the sentence, not the secret).
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|[^\s&;,)'\"]*[^\s&;,)'\".:])"
_KEYWORD = re.compile(rf"(?P<head>(?<![\w.\-])(?:{_SECRET_WORDS})\s*=\s*)(?P<value>{_VALUE})",
                      re.IGNORECASE)
_QUOTED_KEY = re.compile(rf"(?P<head>(?P<q>['\"])(?:{_SECRET_WORDS})(?P=q)\s*:\s*)"
                         rf"(?P<value>{_VALUE})", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def _masked_url(url: str) -> str:
    url = _USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", url, count=1)
    start = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
    if start < 0:
        return url

    def parameter(match: re.Match) -> str:
        name, value = match.group("name"), match.group("value")
        hidden = value if not value or name.strip().lower() in SAFE_PARAMETERS else MASK
        return f"{match.group('sep')}{name}={hidden}"

    return url[:start] + _PARAMETER.sub(parameter, url[start:])


def mask_url(text: Any) -> str:
    """``text`` with the secrets of every URL and connection string in it replaced by ``***``.

    Examples
    --------
    >>> mask_url("postgresql://analyst:s3cret@db:5432/crm")
    'postgresql://analyst:***@db:5432/crm'
    >>> mask_url("postgresql://analyst:p@ss@db/crm?password=x&sslmode=require")
    'postgresql://analyst:***@db/crm?password=***&sslmode=require'
    >>> mask_url("snowflake://u@acct/db?warehouse=wh&private_key_file_pwd=k&x_unknown=v")
    'snowflake://u@acct/db?warehouse=wh&private_key_file_pwd=***&x_unknown=***'
    >>> mask_url("host=db user=u password='a b' dbname=crm sslpassword=k")
    'host=db user=u password=*** dbname=crm sslpassword=***'
    """
    masked = _URL.sub(lambda m: _masked_url(m.group()), str(text))
    masked = _KEYWORD.sub(lambda m: f"{m.group('head')}{MASK}", masked)
    return _QUOTED_KEY.sub(lambda m: f"{m.group('head')}{MASK}", masked)


def redact_emails(text: Any) -> str:
    """E-mail addresses replaced by ``[e-mail removed]``."""
    return EMAIL.sub(EMAIL_REMOVED, str(text))


def redact(text: Any) -> str:
    """Belt and braces for anything shown: connection secrets masked, e-mails removed.

    >>> redact("postgresql://roi:s3cret@db/x, owner a.b@example.com")
    'postgresql://roi:***@db/x, owner [e-mail removed]'
    """
    return redact_emails(mask_url(text))


def redact_document(document: Any) -> Any:
    """A copy of a JSON-like document with :func:`redact` applied to every key and string.

    Numbers, booleans and ``None`` are unchanged; two keys that redact to the same text (two
    e-mail levels of one covariate) are kept apart by a numbered suffix, so nothing is lost.

    >>> redact_document({"balance": {"contact=a@x.com": 0.1, "contact=b@y.org": 0.2}, "n": 3})
    {'balance': {'contact=[e-mail removed]': 0.1, 'contact=[e-mail removed] (2)': 0.2}, 'n': 3}
    """
    if isinstance(document, str):
        return redact(document)
    if isinstance(document, dict):
        out: dict[Any, Any] = {}
        for key, value in document.items():
            new = redact(key) if isinstance(key, str) else key
            if new in out:
                new = _unique_key(out, new)
            out[new] = redact_document(value)
        return out
    if isinstance(document, list | tuple):
        return [redact_document(item) for item in document]
    return document


def _unique_key(taken: dict, key: str) -> str:
    number = 2
    while f"{key} ({number})" in taken:
        number += 1
    return f"{key} ({number})"

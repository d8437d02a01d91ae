"""Passwords of storage URLs never reach a printed line, a log, a record, a plot or an error message.

URLs are read, not pattern-matched: the userinfo runs to the URL's last ``@``, so a password holding
``'``, ``"``, spaces, ``@``, ``:``, ``/`` or %-escapes is hidden whole (``user:***@host``). Every URL
given to ``plsearch.search.storage.parse_storage`` (and ``$PLSEARCH_STORAGE``) is remembered, and
``redact`` replaces each printable form of its password (raw, %-decoded, %-encoded, repr/JSON
escaped, the pieces a URL parser splits it into) anywhere in a text. Imports no torch and no optuna.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

__all__ = ["redact", "redact_url", "remember_secrets", "url_secrets"]

ENV = "PLSEARCH_STORAGE"
# Fallback patterns for URLs nobody told us about (text of unknown origin): user:password@ after scheme://,
# bare user:password@host, and password=... query parameters. Known URLs are redacted by value (below).
_URL_USERINFO = re.compile(r"([A-Za-z][\w+.-]*://[^:/@\s'\"]*):([^@\s'\"]*)@")
_USERINFO = re.compile(r"([^\s:/@'\"()\[\]]+):([^\s'\"/@]*)@(?=[^\s@/'\"]+)")
_PASSWORD_PARAM = re.compile(r"(?i)(password|passwd|pwd)=([^&\s'\"]+)")
_SCHEME = re.compile(r"^\s*([A-Za-z][\w+.-]*):?//")
_KNOWN: set[str] = set()  # every form of every password of the storage URLs this process was given
_MIN_SECRET = 3  # shorter passwords are hidden inside URLs only (replacing "ab" everywhere would garble text)


def _forms(secret: str) -> set[str]:
    """The ways a password may appear in printed text: raw, %-decoded, %-encoded, escaped as repr/JSON,
    and the pieces a URL parser makes of it when it holds an unescaped ``@``, ``:`` or ``/``."""
    import json
    from urllib.parse import quote

    out: set[str] = set()
    for s in {secret, unquote(secret)}:
        out |= {s, quote(s, safe=""), quote(s), repr(s)[1:-1], json.dumps(s)[1:-1], s.replace("'", "\\'")}
        out |= set(re.split(r"[@:/]", s))
    return {f for f in out if len(f) >= _MIN_SECRET}


def url_secrets(url: str | None) -> set[str]:
    """Every printable form of the passwords in a storage URL (userinfo and ``password=`` parameters).

    The userinfo is read up to the URL's last ``@``, so a password holding ``@``, ``:``, ``/``, quotes,
    spaces or %-escapes is caught whole; SQLAlchemy's own reading of the URL is added as well.
    """
    if not url:
        return set()
    text = str(url).strip()
    found: set[str] = set()
    m = _SCHEME.match(text)
    if m:
        rest = text[m.end() :]
        if "@" in rest:
            userinfo = rest.rsplit("@", 1)[0]
            _user, sep, pw = userinfo.partition(":")
            if sep and pw:
                found.add(pw)
    found |= {m2.group(2) for m2 in _PASSWORD_PARAM.finditer(text)}
    try:
        from sqlalchemy.engine import make_url

        url_pw = make_url(text).password
        if url_pw:
            found.add(str(url_pw))
    except Exception:  # noqa: BLE001, S110 - not a URL SQLAlchemy reads; the userinfo above still counts
        pass
    return {f for s in found for f in _forms(s)}


def remember_secrets(url: str | None) -> None:
    """Hide the passwords of ``url`` in everything this process prints from now on (``redact``)."""
    _KNOWN.update(url_secrets(url))


def redact(text: str, *urls: str | None) -> str:
    """``text`` with every password of the storage URLs it holds, of ``urls``, of ``$PLSEARCH_STORAGE`` and
    of every URL given to ``parse_storage`` in this process replaced by ``***``.

    >>> redact("postgresql://me:s3cret@db:5432/x")
    'postgresql://me:***@db:5432/x'
    """
    text = str(text)
    secrets = set(_KNOWN) | url_secrets(os.environ.get(ENV))
    for u in urls:
        secrets |= url_secrets(u)
    if _SCHEME.match(text):  # the text is a URL: read its userinfo whole
        secrets |= url_secrets(text)
    out = text
    for secret in sorted(secrets, key=len, reverse=True):
        out = out.replace(secret, "***")
    out = _URL_USERINFO.sub(r"\1:***@", out)
    return _PASSWORD_PARAM.sub(r"\1=***", _USERINFO.sub(r"\1:***@", out))


def redact_url(url: str | None) -> str:
    """A storage URL fit to print, log or record: everything between ``user:`` and the last ``@`` is ``***``."""
    if url is None:
        return ""
    text = str(url).strip()
    m = _SCHEME.match(text)
    if m and "@" in text[m.end() :]:
        userinfo, host = text[m.end() :].rsplit("@", 1)
        user, sep, _pw = userinfo.partition(":")
        text = text[: m.end()] + (f"{user}:***" if sep else user) + "@" + host
    return redact(text, url)

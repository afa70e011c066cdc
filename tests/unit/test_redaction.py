"""The redactor masks what it claims to: registered secrets, bearer tokens, SAS signatures and
client secrets in text, and the same in every log record (and traceback) through its handler filter."""

from __future__ import annotations

import io
import logging

import pytest

from synapse_ml_track.redaction import MASK, Redactor

SECRET = "Zq8~client.secret-value_42"
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21sLmF6dXJlLmNvbSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def redactor() -> Redactor:
    redactor = Redactor()
    redactor.add(SECRET)
    return redactor


def test_registered_secrets_are_masked_wherever_they_appear(redactor):
    text = f"AADSTS7000215: Invalid client secret provided: '{SECRET}' (again: {SECRET})"
    assert redactor.redact(text) == f"AADSTS7000215: Invalid client secret provided: '{MASK}' (again: {MASK})"


def test_short_and_missing_values_are_not_registered():
    redactor = Redactor()
    redactor.add(None)
    redactor.add("")
    redactor.add("abc12")  # five characters would mask ordinary words
    redactor.add("abc123")
    assert redactor.redact("abc12 abc123") == f"abc12 {MASK}"


def test_a_secret_containing_another_is_masked_whole():
    redactor = Redactor()
    redactor.add("password")
    redactor.add("password-and-more")
    assert redactor.redact("x password-and-more y password z") == f"x {MASK} y {MASK} z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {JWT}", f"Authorization: Bearer {MASK}"),
        (f"authorization: bearer {JWT}==", f"authorization: bearer {MASK}"),
        ("header was BEARER abcdefghijklmnop/+~.-_", f"header was BEARER {MASK}"),
        ("Bearer token not provided.", "Bearer token not provided."),  # no token: left readable
    ],
)
def test_bearer_tokens_are_masked(text, expected):
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-01-01&sig=AbC%2Bd%3D&sp=r failed",
            f"GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-01-01&sig={MASK}&sp=r failed",
        ),
        (
            '{"url": "https://a.blob.core.windows.net/c?SIG=xyz123"}',
            f'{{"url": "https://a.blob.core.windows.net/c?SIG={MASK}"}}',
        ),
        (
            "body grant_type=client_credentials&client_secret=abc~def&scope=x",
            f"body grant_type=client_credentials&client_secret={MASK}&scope=x",
        ),
    ],
)
def test_sas_signatures_and_client_secrets_in_urls_and_bodies_are_masked(text, expected):
    assert Redactor().redact(text) == expected


def test_a_bare_token_in_a_token_response_is_masked():
    assert JWT not in Redactor().redact(f'{{"token_type": "Bearer", "access_token": "{JWT}"}}')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {JWT} expired", f"token {MASK} expired"),
        ('{"access_token": "opaque-token", "expires_in": 3599}', f'{{"access_token": "{MASK}", "expires_in": 3599}}'),
        (
            "grant_type=refresh_token&refresh_token=0.AXo-xy&scope=x",
            f"grant_type=refresh_token&refresh_token={MASK}&scope=x",
        ),
        ("no access_token in the response; version eyJ.1.2", "no access_token in the response; version eyJ.1.2"),
    ],
)
def test_bare_jwts_and_token_values_are_masked_and_ordinary_text_kept(text, expected):
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("client_secret='abc~def ghi'", f"client_secret='{MASK}'"),
        ('{"client_secret": "abc~def"}', f'{{"client_secret": "{MASK}"}}'),
        ("client_secret = abc~def, scope=x", f"client_secret = {MASK}, scope=x"),
    ],
)
def test_a_quoted_client_secret_is_masked(text, expected):
    assert Redactor().redact(text) == expected


def capture(logger: logging.Logger) -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    return stream


@pytest.fixture
def job_logger() -> logging.Logger:
    logger = logging.getLogger("test_redaction.job")
    logger.propagate, logger.handlers = False, []
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.handlers = []


def test_log_records_and_their_arguments_are_redacted(redactor, job_logger):
    stream = capture(job_logger)
    redactor.install(job_logger)
    job_logger.warning("credential %s refused; token Bearer %s", SECRET, JWT)
    job_logger.info("nothing secret in %s", "here")
    assert stream.getvalue() == f"WARNING credential {MASK} refused; token Bearer {MASK}\nINFO nothing secret in here\n"


def test_tracebacks_in_log_records_are_redacted(redactor, job_logger):
    stream = capture(job_logger)
    redactor.install(job_logger)
    try:
        raise RuntimeError(f"upload to https://a.blob.core.windows.net/c?sig=abc123 with {SECRET} failed")
    except RuntimeError:
        job_logger.exception("upload failed")
    output = stream.getvalue()
    assert "Traceback (most recent call last)" in output and f"sig={MASK} with {MASK} failed" in output
    assert SECRET not in output and "abc123" not in output
    # Handlers that format the exception themselves (structured exporters) find none left on the record.
    seen = []
    job_logger.addHandler(recorder := logging.Handler())
    recorder.emit = seen.append
    redactor.install(job_logger)
    try:
        raise RuntimeError(SECRET)
    except RuntimeError:
        job_logger.exception("again")
    assert seen[0].exc_info is None and SECRET not in seen[0].exc_text


def test_installing_twice_filters_once(redactor, job_logger):
    handler = logging.NullHandler()
    job_logger.addHandler(handler)
    redactor.install(job_logger)
    redactor.install(job_logger)
    assert len(handler.filters) == 1


def test_by_default_records_reaching_the_root_handlers_are_redacted(redactor, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.StreamHandler(stream)])
    redactor.install()
    logging.getLogger("synapse_ml_track.some_module").error("secret %s", SECRET)
    assert stream.getvalue() == f"secret {MASK}\n"

"""Credentials in URLs: a refused password is AuthenticationFailed (not a
connection error), and no password shows in any message, whatever
characters it holds."""

from __future__ import annotations

import pytest

import latchkey

# Every character with a meaning in a URL, raw and percent-encoded.
AWKWARD = "p/@:%#?w0rd"
AWKWARD_ENCODED = "p%2F%40%3A%25%23%3Fw0rd"


def host_port(url: str) -> str:
    return url.split("://", 1)[1]


def assert_no_secret(text: str) -> None:
    for secret in (AWKWARD, AWKWARD_ENCODED, "se/cret", "w0rd"):
        assert secret not in text, f"{secret!r} shows in {text!r}"


def test_refused_credentials_raise_authentication_failed(url: str) -> None:
    # No such user on the test server: Redis answers WRONGPASS.
    bad = f"redis://nobody:{AWKWARD_ENCODED}@{host_port(url)}"
    with latchkey.Client(bad) as client:
        with pytest.raises(latchkey.AuthenticationFailed) as caught:
            client.is_locked("credentials-probe")
    err = caught.value
    assert isinstance(err, latchkey.LatchkeyError)
    assert isinstance(err, PermissionError)
    assert not isinstance(err, latchkey.ConnectionFailed)
    assert err.status == 10
    assert "authentication" in str(err)
    assert_no_secret(str(err))
    assert_no_secret(repr(err))


@pytest.mark.parametrize("password", ["se/cret", "se@cret", "se#cret", "se?cret", AWKWARD])
def test_raw_awkward_passwords_never_show(url: str, password: str) -> None:
    raw = f"redis://bob:{password}@{host_port(url)}/0"
    try:
        client = latchkey.Client(raw)
    except latchkey.InvalidArgument as err:
        assert_no_secret(str(err))
        assert "percent-encode" in str(err)
    else:
        with client:
            with pytest.raises(latchkey.LatchkeyError) as caught:
                client.is_locked("credentials-probe")
            assert_no_secret(str(caught.value))


def test_an_invalid_url_never_shows_a_query_password() -> None:
    """A unix socket URL authenticates with ?pass=; an invalid one used to
    be echoed verbatim in the error, password included."""
    for url in (
        "unix:///tmp/no-such.sock?db=x&pass=S3CRETpw",
        "redis://127.0.0.1:notaport/?pass=S3CRETpw",
        "redis://127.0.0.1/?password=S3CRETpw",
    ):
        with pytest.raises(latchkey.InvalidArgument) as caught:
            latchkey.Client(url)
        assert "S3CRETpw" not in str(caught.value)
        assert "S3CRETpw" not in repr(caught.value)


# Before the fix, the argument checks quoted the whole value: a URL with a
# NUL or a lone surrogate in it was repeated in the ValueError, password
# included, and so was a master_password with one (every time, 5 of 5
# cases below).
@pytest.mark.parametrize(
    "make",
    [
        lambda: latchkey.Client(f"redis://:{AWKWARD_ENCODED}@127.0.0.1:1\0"),
        lambda: latchkey.Client(f"redis://:{AWKWARD_ENCODED}\ud800@127.0.0.1:1"),
        lambda: latchkey.Client.redlock(
            [f"redis://:{AWKWARD_ENCODED}@h:1\0", "redis://h:2", "redis://h:3"]
        ),
        lambda: latchkey.Client.sentinel(["redis://h:1"], "m", master_password="se/cret\0"),
        lambda: latchkey.Client.sentinel(["redis://h:1"], "m", master_password="se/cret\udc80"),
    ],
)
def test_argument_checks_never_quote_a_url_or_password(make: object) -> None:
    with pytest.raises(ValueError) as caught:
        make()  # type: ignore[operator]
    assert "index" in str(caught.value)
    assert_no_secret(str(caught.value))
    assert_no_secret(repr(caught.value))

"""Email addresses as Sidestep stores them: domain lower-cased and IDNA-encoded, local part as
given (NFC-normalised; local parts are case-sensitive in principle, so never lower-cased).

`normalise(text)` returns the stored form or raises `InvalidAddress` with a reason a person
can act on. Addresses with a non-ASCII local part are accepted (they need SMTPUTF8 to send).
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 320


class InvalidAddress(ValueError):
    """The text is not an email address Sidestep can mail; `str()` says why."""


def normalise(text: str) -> str:
    """Return the stored form of `text`; raise `InvalidAddress` with the reason it is refused."""
    candidate = text.strip()
    if not candidate:
        raise InvalidAddress("the address is empty")
    if any(ch in candidate for ch in "\r\n\0"):
        raise InvalidAddress("the address contains a line break or NUL character")
    if len(candidate) > MAX_LENGTH:
        raise InvalidAddress(f"the address is longer than {MAX_LENGTH} characters")
    try:
        valid = validate_email(
            candidate, check_deliverability=False, allow_smtputf8=True, allow_quoted_local=False
        )
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    return f"{valid.local_part}@{valid.ascii_domain}"


def is_valid(text: str) -> bool:
    try:
        normalise(text)
    except InvalidAddress:
        return False
    return True

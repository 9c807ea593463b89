"""What every task shares: the example type and the errors a user can cause."""
import unicodedata
from dataclasses import dataclass


@dataclass
class Example:
    input: str
    target: str
    meta: dict


class DataError(Exception):
    """A problem with data the user can fix (bad option, bad file, impossible split); one line."""


class BadInput(ValueError):
    """A typed problem that is not a problem of the task (wrong shape, division by zero); one line."""


def fold(text: str, keep) -> str:
    """What people type, in plain characters: full-width and other compatibility forms become
    their ASCII twins (NFKC), except the symbols in keep; whitespace goes."""
    return "".join(c if c in keep else unicodedata.normalize("NFKC", c) for c in text if not c.isspace())

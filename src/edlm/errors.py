"""The one exception type for bad user input.

Anything a user can get wrong (a path, a checksum, a vocabulary, an argument out of range) raises
`EdlmError` with one sentence that names the value and the fix; the CLI turns it into exit status 2.
"""


class EdlmError(ValueError):
    """Bad input: the message names the offending value and how to fix it."""


def require(condition: bool, message: str) -> None:
    """Raise `EdlmError(message)` unless `condition` holds."""
    if not condition:
        raise EdlmError(message)

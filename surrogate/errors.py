"""User-facing errors.

Every message says what was expected and what was found, naming the argument,
so that the command line can print it without a traceback.
"""


class SurrogateError(Exception):
    """An error caused by input the user can fix (files, options, data)."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`SurrogateError` with ``message`` unless ``condition``."""
    if not condition:
        raise SurrogateError(message)


def check_positive_int(name: str, value) -> int:
    """``value`` as an int, or an error like ``latent must be a positive integer, found 0``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) or value < 1:
        raise SurrogateError(f"{name} must be a positive integer, found {value!r}")
    return int(value)


def check_choice(name: str, value: str, choices) -> str:
    """``value`` if it is one of ``choices``, else an error listing the valid names."""
    if value not in choices:
        valid = ", ".join(sorted(choices))
        raise SurrogateError(f"unknown {name} {value!r}; valid names: {valid}")
    return value

"""The ``surrogate`` group and what its commands share: error reporting, list options."""

from __future__ import annotations

import functools
import sys

import click

from surrogate.errors import SurrogateError, as_flags

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


def user_errors(fn):
    """Report :class:`SurrogateError` as ``Error: ...`` with exit code 1, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SurrogateError as exc:
            raise click.ClickException(as_flags(str(exc))) from None
        except KeyboardInterrupt:
            click.echo("interrupted; completed work is saved", err=True)
            sys.exit(130)

    return wrapper


def int_list(ctx, param, value):
    if value is None or isinstance(value, tuple):
        return value
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, found {value!r}") from None


def float_list(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, found {value!r}") from None


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="surrogate")
def main():
    """Train a decoder in PyTorch and use it as a fast prior in Stan."""

"""The ``surrogate`` command line: thin commands, each calling one library function.

``common`` holds the group; ``nn`` the commands of the PyTorch side; ``fit`` those that sample with Stan; ``maps`` the map fit.
"""

from surrogate.cli import batch, fit, maps, nn  # noqa: F401  (registers the commands)
from surrogate.cli.common import main

__all__ = ["main"]

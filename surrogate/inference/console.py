"""What a sampling run shows at the terminal: a bar per chain, and none of the engines' chatter.

Stan's engines talk a lot: stanc's pedantic warnings, "Gradient evaluation took ...", a
progress line per percent, cache messages, logger lines. All of it goes into the run's
log (``StanFit.log``, written as ``engine.log`` beside the outputs); the terminal gets one
bar per chain (:class:`ChainBars`, live on a terminal, a closing line per chain elsewhere)
or one bar over a set of runs (:func:`one_bar`, for the piece-wise class models), then the
summary. :func:`set_verbose` (``--verbose``) also echoes each run's log to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import threading
import time
import warnings
from typing import Iterator

from tqdm import tqdm

_state: dict = {"verbose": False, "reporter": None}
_lock = threading.Lock()
_captured: list[str] = []  # library log records since the last drain (cmdstanpy's logger)


def set_verbose(flag: bool) -> None:
    """Echo every run's engine log to stderr (``--verbose``)."""
    _state["verbose"] = bool(flag)


def verbose() -> bool:
    return _state["verbose"]


def note(message: str) -> None:
    """A line for the user on stderr (e.g. that a program is being compiled)."""
    print(message, file=sys.stderr, flush=True)


def echo_log(text: str) -> None:
    if _state["verbose"] and text.strip():
        print(text.rstrip(), file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# progress


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (bars then render as notebook widgets, through tqdm.auto)."""
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def notebook_widgets() -> bool:
    """A Jupyter kernel that can show tqdm.auto's widget bars (ipywidgets installed); without them a kernel gets closing lines."""
    import importlib.util

    return in_notebook() and importlib.util.find_spec("ipywidgets") is not None


def _live(stream) -> bool:
    return notebook_widgets() or bool(getattr(stream, "isatty", lambda: False)())


def _bar(**kwargs):
    """A tqdm bar: tqdm.auto's widget in a notebook, the terminal's otherwise."""
    if notebook_widgets():
        from tqdm.auto import tqdm as auto_tqdm

        for key in ("file", "nrows", "ncols", "position"):
            kwargs.pop(key, None)
        return auto_tqdm(**kwargs)
    return tqdm(**kwargs)


def _size() -> dict:
    """tqdm's ncols and nrows: a terminal that reports no size (0 x 0) would hide every bar."""
    size = shutil.get_terminal_size((100, 24))
    return {"ncols": max(40, min(size.columns or 100, 120)), "nrows": max(size.lines or 24, 24)}


class ChainBars:
    """One bar per chain of one run: live on a terminal; elsewhere a closing line per chain."""

    def __init__(self, stream=None):
        self.stream = stream

    def start(self, label: str, chains: int, warmup: int, draws: int) -> None:
        self.stream = self.stream or sys.stderr
        self.live = _live(self.stream)
        self.total, self.warmup = warmup + draws, warmup
        self.n = [0] * chains
        self.t0 = time.perf_counter()
        self.bars = []
        if self.live:
            self.bars = [_bar(total=self.total, desc=f"chain {c + 1}", position=c, leave=True, file=self.stream, unit="it",
                              **_size(), postfix="warmup" if warmup else "sampling") for c in range(chains)]  # fmt: skip

    def update(self, chain: int, iteration: int, sampling: bool) -> None:
        """Chain ``chain`` (0-based) has done ``iteration`` iterations; ``sampling``: past warmup."""
        with _lock:
            iteration = min(iteration, self.total)
            if self.live:
                bar = self.bars[chain]
                if sampling and bar.postfix != "sampling":
                    bar.set_postfix_str("sampling", refresh=False)
                bar.update(iteration - self.n[chain])
            self.n[chain] = iteration

    def finish(self, ok: bool = True) -> None:
        elapsed = time.perf_counter() - self.t0
        with _lock:
            if ok:
                self.n = [self.total] * len(self.n)
            for c, bar in enumerate(self.bars):
                bar.update(self.n[c] - bar.n)
                bar.set_postfix_str("done" if ok else "stopped")
                bar.close()
            if not self.live:
                for c, n in enumerate(self.n):
                    meter = tqdm.format_meter(n, self.total, elapsed, ncols=80, prefix=f"chain {c + 1}", unit="it")
                    print(meter + ("" if ok else "  stopped"), file=self.stream, flush=True)


class TotalBar:
    """One bar over several runs (every chain of every piece), sized by their total iterations."""

    def __init__(self, total: int, desc: str, stream=None):
        self.stream = stream or sys.stderr
        self.live = _live(self.stream)
        self.total, self.desc, self.done = total, desc, 0
        self.t0 = time.perf_counter()
        self.bar = _bar(total=total, desc=desc, file=self.stream, unit="it", **_size()) if self.live else None

    def start(self, label: str, chains: int, warmup: int, draws: int) -> None:
        self.run_total = warmup + draws
        self.n = [0] * chains
        if self.bar is not None:
            self.bar.set_postfix_str(label)

    def update(self, chain: int, iteration: int, sampling: bool) -> None:
        with _lock:
            iteration = min(iteration, self.run_total)
            self._advance(iteration - self.n[chain])
            self.n[chain] = iteration

    def _advance(self, k: int) -> None:
        self.done += k
        if self.bar is not None:
            self.bar.update(k)

    def finish(self, ok: bool = True) -> None:
        with _lock:
            if ok:  # a cached or fast run reports fewer iterations than it did
                self._advance(sum(self.run_total - n for n in self.n))
                self.n = [self.run_total] * len(self.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            meter = tqdm.format_meter(self.done, self.total, time.perf_counter() - self.t0, ncols=80, prefix=self.desc, unit="it")
            print(meter, file=self.stream, flush=True)


def reporter():
    """The progress display for the next run: the active :func:`one_bar`, else bars per chain."""
    return _state["reporter"] or ChainBars()


@contextlib.contextmanager
def one_bar(total: int, desc: str) -> Iterator[TotalBar]:
    """Show the runs inside this block as one bar of ``total`` iterations."""
    bar = TotalBar(total, desc)
    previous, _state["reporter"] = _state["reporter"], bar
    try:
        yield bar
    finally:
        _state["reporter"] = previous
        bar.close()


# ----------------------------------------------------------------------------
# library messages


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        with _lock:
            _captured.append(f"{record.levelname.lower()}: {record.getMessage()}")


def capture_logger(name: str) -> None:
    """Send logger ``name``'s records into the engine log instead of the terminal."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, _Capture) for h in logger.handlers):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(_Capture())
        logger.setLevel(logging.DEBUG)
        logger.propagate = False


def drain_captured() -> list[str]:
    with _lock:
        lines = list(_captured)
        _captured.clear()
    return lines


@contextlib.contextmanager
def known_noise() -> Iterator[None]:
    """Silence the warnings these libraries are known to emit on every use, and only those."""
    with warnings.catch_warnings():
        # pystan 3.10 imports pkg_resources; httpstan's schemas use marshmallow 3 API that 4 deprecates
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pkg_resources")
        warnings.filterwarnings("ignore", message="The 'missing' argument to fields is deprecated")
        warnings.filterwarnings("ignore", message="`Number` field should not be instantiated")
        # httpstan reads its resources with importlib.resources' legacy API
        warnings.filterwarnings("ignore", message="(path|read_text|open_text) is deprecated. Use files", category=DeprecationWarning)
        # httpstan's aiohttp app stores state under string keys
        warnings.filterwarnings("ignore", message=r"It is recommended to use web\.(App|Request|Response)Key", category=UserWarning)
        yield

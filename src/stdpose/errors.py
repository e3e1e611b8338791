"""Exceptions for mistakes a user can fix; the CLI prints them as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path


class StdposeError(Exception):
    """Base class: a problem with the user's input, configuration or environment."""

    def __str__(self) -> str:
        return _unwrap_worker_message(super().__str__())


def _unwrap_worker_message(text: str) -> str:
    """A DataLoader worker re-raises our error as `Caught DataError in DataLoader worker process 0.` followed by
    the worker's traceback: keep only the original one-line message (its last line, after the class name)."""
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    for name in ("DataError: ", "ConfigError: ", "StdposeError: "):
        if name in last:
            return last.split(name, 1)[1]
    return last


class DataError(StdposeError):
    """A data file is missing, unreadable or malformed; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str | None = None):
        if problem is None:  # one message (how a DataLoader worker re-creates the error in the main process)
            path, problem = None, _unwrap_worker_message(str(path))
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self):  # picklable, so an error in a worker process reaches the parent intact
        return (type(self), (self.path, self.problem))


class ConfigError(StdposeError):
    """A configuration key is unknown or has a value that is not allowed."""

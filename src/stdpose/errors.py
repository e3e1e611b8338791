"""Exceptions for mistakes a user can fix; the CLI prints them as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path


class StdposeError(Exception):
    """Base class: a problem with the user's input, configuration or environment."""


class DataError(StdposeError):
    """A data file is missing, unreadable or malformed; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self):  # picklable, so an error in a worker process reaches the parent intact
        return (type(self), (self.path, self.problem))


class ConfigError(StdposeError):
    """A configuration key is unknown or has a value that is not allowed."""

"""Typed errors that carry their exit code.

Library code raises these; only the CLI entry point prints them and exits.
A message names the thing, the rule, the value and the fix.
"""

from __future__ import annotations


class LongtakeError(Exception):
    """Base class: the run failed; finished work is kept (exit 1)."""

    exit_code = 1


class ConfigError(LongtakeError):
    """The project file or a command-line option is wrong (exit 2).

    ``problems`` holds every problem found, so the user fixes them all in one go.
    """

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class UsageError(ConfigError):
    """A command-line usage error (exit 2)."""


class MediaError(LongtakeError):
    """An input media file is missing, unreadable or unusable (exit 3)."""

    exit_code = 3


class GeneratorError(LongtakeError):
    """The generator cannot run with these settings (exit 1)."""


class ModelFileError(GeneratorError, ConfigError):
    """A model file the config names is missing, cut short, or not the model it should be (exit 2: fix the config or the file)."""

    exit_code = 2


class LockedError(LongtakeError):
    """Another run holds the work folder (exit 1)."""


class RunInterrupted(LongtakeError):
    """Ctrl-C or SIGTERM: finished steps are kept; run again to resume (exit 130)."""

    exit_code = 130


class WorkdirError(LongtakeError):
    """The work folder cannot be written: disk full, quota, read-only or no permission (exit 1).

    Finished steps are kept; fix the folder (or point ``workdir:`` elsewhere) and run again.
    ``path`` is the folder that could not be written, ``errno`` the OS error number and
    ``free_bytes`` the free space there when it was measured (None when unknown).
    """

    def __init__(self, message: str, *, path=None, errno: int | None = None, free_bytes: int | None = None):
        super().__init__(message)
        self.path = path
        self.errno = errno
        self.free_bytes = free_bytes

"""The one base of every error a user can fix: the tools raise subclasses of :class:`UserError`,
and the command line prints any of them as one line, without a traceback (a subclass needs no
registration anywhere)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a server down, a missing GPU...: the user's to fix, not a bug."""


__all__ = ["UserError"]

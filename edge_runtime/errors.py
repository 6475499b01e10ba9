"""The root of edge_runtime's exceptions, so that a command line catches one type for every failure it explains.

Every exception class of edge_runtime derives from EdgeRuntimeError (those that were ValueErrors, RuntimeErrors
or sqlite3 errors still are); its message names the file, field or request and says what to do.
"""

from __future__ import annotations


class EdgeRuntimeError(Exception):
    """Base of every exception edge_runtime raises on purpose; the message says what is wrong and what to do."""

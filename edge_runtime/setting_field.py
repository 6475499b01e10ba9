"""How a user-facing setting is declared: a dataclass field carrying its help, kind and flag.

`EdgeSettings` (edge_runtime.settings) nests `DeliverySettings` and `OutboxSettings` as fields, as
wyoming-satellite nests its microphone and sound settings. The fields a user may set are declared with
`setting(...)` in whichever dataclass holds them, so each help text lives beside its field; `section(...)`
marks a nested dataclass. The loaders and the command line read this metadata; fields declared without it
(e.g. the sender's jitter) are internal and not exposed.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, kind: str, help: str, *, flag: str | None = None, metavar: str | None = None,
            old: str | None = None) -> Any:
    """A dataclass field with the metadata the loaders and the CLI read.

    kind: how TOML/env/flag values are converted ('str', 'path', 'int', 'float', 'list', 'thresholds').
    flag: the command-line flag when it is not --<flat-name>.
    old: the setting's former flat name, still read from TOML (key), the environment (EDGE_RUNTIME_<OLD>) and the
        command line (--old-name, hidden from --help).
    """
    meta = {"kind": kind, "help": help, "flag": flag, "metavar": metavar, "old": old}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for frozen settings")
    return field(default=default, metadata=meta)


def section(factory: type, *, prefix: str) -> Any:
    """A nested settings dataclass: its `setting(...)` fields are exposed flat as <prefix><field name>
    (flag --<prefix>-<field-name>, variable EDGE_RUNTIME_<PREFIX><FIELD_NAME>), or in a TOML table named
    after this field."""
    return field(default_factory=factory, metadata={"section": factory, "prefix": prefix})

"""Frozen settings dataclasses from JSON/TOML dicts: unknown fields are errors, lists become tuples."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict[str, Any], *, source: str, what: str,
                        tuple_fields: Iterable[str] = ()) -> T:
    """`cls(**data)` after refusing fields `cls` does not have (ValueError naming them and `source`)
    and turning JSON lists into tuples for `tuple_fields`."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {what} field(s) {unknown}; known fields are {sorted(known)}")
    data = dict(data)
    for key in tuple_fields:
        if key in data:
            data[key] = tuple(data[key])
    return cls(**data)

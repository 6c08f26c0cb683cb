"""Named registries for the extension points: source formats, hash methods, engines."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from fer.errors import FerDataError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping of names to entries that modules add themselves to."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; a second entry with the same name is a programming error."""
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def lookup(self, name: object, where: str) -> T:
        """The entry for `name`, or a FerDataError naming `where` and the known names."""
        if not isinstance(name, str) or name not in self._entries:
            raise FerDataError(
                f"{where}: {name!r} is not a known {self.kind}; use one of {', '.join(self)}"
            )
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

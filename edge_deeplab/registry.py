"""A tiny name -> entry registry whose errors list the valid names, and that finds its members.

Class registries (converters, runtimes) register each class under its own `name` class
attribute and fill themselves with `discover(package)`: every module of the package is
imported (`pkgutil.iter_modules`), so a new file needs no import line anywhere, and a
module that fails to import is an error rather than a silently missing entry.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, Generic, Iterator, TypeVar, Union

from .errors import InvalidInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lowercase names (the CLI values) to classes (or plain data).

    Args:
        kind: what the entries are, used in error messages ("converter", "runtime").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, entry: Union[str, T]):
        """`@registry.register` on a class (registered under `cls.name`), or
        `registry.register("name")(data)` for entries without a name of their own."""
        if isinstance(entry, str):
            return lambda obj: self._add(entry, obj)
        return self._add(entry.name, entry)

    def _add(self, name: str, obj: T) -> T:
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        # Display order (CLI choices, tables, report rows): each class's declared `order`.
        ranked = sorted(self._entries.items(), key=lambda item: getattr(item[1], "order", 100))
        self._entries = dict(ranked)
        return obj

    def unregister(self, name: str) -> None:
        """Forget `name` (for tests that add a member for their own duration)."""
        self._entries.pop(name, None)

    def discover(self, package: str) -> None:
        """Import every module of `package` (and of any folder added to its `__path__`)."""
        root = importlib.import_module(package)
        for module in sorted(info.name for info in pkgutil.iter_modules(root.__path__)):
            if not module.startswith("_"):
                importlib.import_module(f"{package}.{module}")

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "none"
            raise InvalidInputError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


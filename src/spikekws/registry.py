"""A small generic registry: name -> object, with helpful errors for unknown names."""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Generic, Iterator, List, Optional, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lower-case names to objects (classes or factory functions).

    >>> MODELS = Registry("model")
    >>> @MODELS.register("snn")
    ... class SNN: ...
    >>> MODELS.get("snn") is SNN
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str, obj: Optional[T] = None) -> Any:
        key = name.lower()

        def _add(o: T) -> T:
            if key in self._entries and self._entries[key] is not o:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = o
            return o

        if obj is not None:
            return _add(obj)
        return _add

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = name.lower()
        if key not in self._entries:
            raise KeyError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self._entries)) or "(none)"
        close = difflib.get_close_matches(name.lower(), list(self._entries), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (available: {known})"

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        factory: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        return factory(*args, **kwargs)

    def list(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"

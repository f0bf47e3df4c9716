"""Loaded models kept for reuse, with one policy everywhere: a bound, least recently used
dropped first, and a checkpoint rewritten in place never served from the cache."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

#: Models kept per cache. Each holds its weights and an ONNX Runtime session (tens of MB
#: for the bundled model, hundreds for large encoders); two cover switching back and forth.
MAX_MODELS = 2


class ModelCache:
    """Values (Predictors, or what a panel keeps with one) by key, at most ``max_models``.

    Examples
    --------
    >>> cache = ModelCache(max_models=2)
    >>> for name in ("a", "b", "a", "c"):
    ...     _ = cache.get(name, lambda name=name: name.upper())
    >>> cache.keys()  # "b" was used least recently
    ['a', 'c']
    """

    def __init__(self, max_models: int = MAX_MODELS):
        self.max_models = max_models
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The value for ``key``, from ``load()`` the first time."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return self.put(key, load())

    def put(self, key: Hashable, value: Any) -> Any:
        """Keep ``value`` for ``key`` (dropping the least recently used beyond the bound)."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_models:
            self._items.popitem(last=False)
        return value

    def peek(self, key: Hashable) -> Any | None:
        """The value for ``key`` if kept (marked as used), else None."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def keys(self) -> list:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()


def checkpoint_key(model, *rest: Hashable) -> tuple:
    """A cache key for a checkpoint (path or ``"default"``) that changes when the file is
    rewritten (fine-tuning in place), followed by ``rest`` (device, precision...)."""
    from ..network.checkpoint import checkpoint_path

    path = checkpoint_path(model)
    return (str(path), path.stat().st_mtime_ns if path.exists() else 0, *rest)

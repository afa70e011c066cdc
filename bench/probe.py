"""Timers wrapped around library and MLflow functions, to see where a run's time goes.

Each wrapped function adds its elapsed time to a named bucket; nested calls of the same bucket
count once (the outermost). Buckets marked as tracking overhead also feed one union timer,
"overhead", which counts wall time spent inside *any* of them once, however they nest: that is
the "time in tracking and model logging" of a run. Buckets marked as model logging feed a
second union timer, "model".
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any


class Probe:
    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()
        self._undo: list[Callable[[], None]] = []

    def reset(self) -> None:
        with self._lock:
            self.seconds = Counter()
            self.calls = Counter()

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.seconds)

    def call_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    def _depths(self) -> Counter:
        depths = getattr(self._local, "depths", None)
        if depths is None:
            depths = self._local.depths = Counter()
        return depths

    def _enter(self, keys: tuple[str, ...]) -> list[str]:
        depths = self._depths()
        opened = []
        for key in keys:
            depths[key] += 1
            if depths[key] == 1:
                opened.append(key)
        return opened

    def _exit(self, keys: tuple[str, ...], opened: list[str], elapsed: float) -> None:
        depths = self._depths()
        for key in keys:
            depths[key] -= 1
        with self._lock:
            for key in opened:
                self.seconds[key] += elapsed
            self.calls[keys[0]] += 1

    def wrap(
        self,
        owner: Any,
        name: str,
        bucket: str,
        *,
        overhead: bool = False,
        model: bool = False,
        when: Callable[[tuple, dict], bool] | None = None,
    ) -> None:
        """Time owner.name into `bucket` (and the union timers it belongs to)."""
        own = isinstance(owner, type) and name in owner.__dict__
        original = owner.__dict__[name] if own else getattr(owner, name)
        if isinstance(original, (staticmethod, classmethod)):
            raise TypeError(f"cannot wrap {owner}.{name}: static/class methods are not supported")
        keys = (bucket,) + (("overhead",) if overhead else ()) + (("model",) if model else ())
        probe = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if when is not None and not when(args, kwargs):
                return original(*args, **kwargs)
            opened = probe._enter(keys)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                probe._exit(keys, opened, time.perf_counter() - start)

        setattr(owner, name, timed)
        if isinstance(owner, type) and not own:
            self._undo.append(lambda: delattr(owner, name))  # it was inherited: uncover the parent's
        else:
            self._undo.append(lambda: setattr(owner, name, original))

    def wrap_public_methods(self, cls: type, bucket: str, *, overhead: bool = False) -> list[str]:
        wrapped = []
        for name, value in list(vars(cls).items()):
            if name.startswith("_") or not callable(value) or isinstance(value, (staticmethod, classmethod, property)):
                continue
            self.wrap(cls, name, bucket, overhead=overhead)
            wrapped.append(name)
        return wrapped

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

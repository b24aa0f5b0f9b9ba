"""PascalCase (Circle's REST API) -> camelCase (our wire). Applied to every key of an upstream
object, recursively, so fields we do not model still reach the client.

Big replies are lists of objects with the same keys (1,000 circles: 7,000 fields). Renaming each
key in a Python loop was 30 % of such a call (issue 10), so an object's keys are renamed as a whole,
through a cache from its key tuple to the renamed one, and its values are copied by C-level
``zip``; only objects holding an object or a list are walked further."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_SHAPES_MAX = 1024  # distinct key sets remembered; a hostile upstream cannot grow the cache past it
_shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
_NESTED = frozenset({dict, list})


@lru_cache(maxsize=4096)
def camel_key(key: str) -> str:
    """``CircleId`` -> ``circleId``, ``ID`` -> ``id``, ``URLPath`` -> ``urlPath``, ``FmapID`` -> ``fmapID``."""
    if not key or not key[0].isupper():
        return key
    upper = 0
    while upper < len(key) and key[upper].isupper():
        upper += 1
    if upper == len(key):
        return key.lower()
    if upper == 1:
        return key[0].lower() + key[1:]
    # an acronym followed by a word: keep the last capital as the word's start
    return key[: upper - 1].lower() + key[upper - 1 :]


def _renamed(keys: tuple[str, ...]) -> tuple[str, ...]:
    renamed = _shapes.get(keys)
    if renamed is None:
        renamed = tuple(map(camel_key, keys))
        if len(_shapes) >= _SHAPES_MAX:
            _shapes.clear()
        _shapes[keys] = renamed
    return renamed


def _camelize_dict(value: dict[str, Any]) -> dict[str, Any]:
    renamed = _renamed(tuple(value))
    values = value.values()
    if _NESTED.isdisjoint(map(type, values)):
        return dict(zip(renamed, values))  # noqa: B905  # same length by construction
    return {k: camelize(v) for k, v in zip(renamed, values)}  # noqa: B905


def _camelize_list(items: list[Any]) -> list[Any]:
    # inlined for the common case, a list of flat objects with the same keys: no call per item
    out: list[Any] = []
    append = out.append
    last_keys: tuple[str, ...] | None = None
    renamed: tuple[str, ...] = ()
    for item in items:
        kind = type(item)
        if kind is dict:
            keys = tuple(item)
            if keys != last_keys:
                renamed, last_keys = _renamed(keys), keys
            values = item.values()
            if _NESTED.isdisjoint(map(type, values)):
                append(dict(zip(renamed, values)))  # noqa: B905
            else:
                append({k: camelize(v) for k, v in zip(renamed, values)})  # noqa: B905
        elif kind is list:
            append(_camelize_list(item))
        else:
            append(item)
    return out


def camelize(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return _camelize_dict(value)
    if kind is list:
        return _camelize_list(value)
    return value

"""PascalCase (Circle's REST API) -> camelCase (our wire). Applied to every key of an upstream
object, recursively, so fields we do not model still reach the client."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


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


def camelize(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel_key(k): camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value

"""PascalCase (Circle's REST API) -> camelCase (our wire). Applied to every key of an upstream
object, recursively, so fields we do not model still reach the client.

Big replies are lists of objects with the same keys (1,000 circles: 7,000 fields). Renaming each
key in a Python loop was 30 % of such a call (issue 10), so an object's keys are renamed as a whole,
through a cache from its key tuple to the renamed one, and its values are copied by C-level
``zip``; only objects holding an object or a list are walked further."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec

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


_SCALARS = (str, int, float, bool, type(None))
_Scalar = str | int | float | bool | None
_MAX_FIELDS = 64
_ENCODE = msgspec.json.Encoder().encode


class FlatListRenamer:
    """The camelCased JSON of a reply's array of flat objects (Circle's list replies: ``CircleMeta``,
    ``Topics``), without a Python dict per item.

    Such a list repeats one key set. Once seen (``learn``), the key set becomes generated Structs:
    the reply's ``envelope`` holding ``field`` as a list of items named by Circle's keys (unknown
    keys forbidden), and the same items named by our camelCase keys. msgspec parses the body once,
    converts the items and encodes them, all in C: 1,000 circles cost about a quarter of decoding
    to dicts and renaming them (issue 10). A reply that does not fit (a new or nested field,
    ``required`` missing or not a string) gives None: the caller takes the dict path, which
    learns the new shape."""

    def __init__(self, envelope: type[msgspec.Struct], field: str, required: str) -> None:
        self._envelope = envelope
        self._field = field
        self._required = required
        self._decode: Callable[[bytes | bytearray], Any] | None = None
        self._out: Any = None

    def fit(self, body: bytes | bytearray) -> Any | None:
        """The reply decoded into its envelope, the items typed; None if it does not fit."""
        if self._decode is None:
            return None
        try:
            return self._decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None

    def to_json(self, fitted: Any) -> bytes:
        """The items of a fitted reply, camelCased, as a JSON array."""
        items = getattr(fitted, self._field) or []
        return _ENCODE(msgspec.convert(items, self._out, from_attributes=True))

    def learn(self, items: Any) -> None:
        """Remember the key set of ``items`` (a decoded list, before renaming), if it qualifies."""
        keys: dict[str, None] = {}
        if not isinstance(items, list):
            return
        for item in items:
            if not isinstance(item, dict) or not all(type(v) in _SCALARS for v in item.values()):
                return
            if not isinstance(item.get(self._required), str):
                return
            keys.update(dict.fromkeys(item))
        camel = [camel_key(k) for k in keys]
        if not keys or len(keys) > _MAX_FIELDS or len(set(camel)) != len(camel):
            return  # two keys that camelCase alike would collide: the dict path keeps its behaviour
        names = [f"f{n}" for n in range(len(keys))]
        fields = [
            (name, str) if key == self._required else (name, _Scalar | msgspec.UnsetType, msgspec.UNSET)
            for name, key in zip(names, keys, strict=True)
        ]
        # gc=False: they hold scalars only, so they cannot form a cycle, and 2,000 tracked objects
        # per 1,000-circle reply would set off the cyclic collector over the whole heap (pygls' too)
        circle_item = msgspec.defstruct(
            "CircleItem",
            fields,
            rename=dict(zip(names, keys, strict=True)),
            kw_only=True,
            forbid_unknown_fields=True,
            gc=False,
        )
        envelope = msgspec.defstruct(
            "FittedReply",
            [(self._field, list[circle_item] | None, None)],  # type: ignore[valid-type]
            bases=(self._envelope,),
            kw_only=True,
        )
        # Any: the values were checked on the way in, and convert refuses UNSET for a union type
        wire_fields = [(name, Any, msgspec.UNSET) for name in names]
        wire_item = msgspec.defstruct(
            "WireItem", wire_fields, rename=dict(zip(names, camel, strict=True)), kw_only=True, gc=False
        )
        self._decode = msgspec.json.Decoder(envelope).decode
        self._out = list[wire_item]  # type: ignore[valid-type]

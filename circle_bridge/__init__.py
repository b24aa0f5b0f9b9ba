"""circle-bridge: Circle's token signing, token refresh and CircleService calls, once, behind a
JSON-RPC 2.0 server that any language can drive over stdio."""

from ._version import __version__

__all__ = ["__version__"]

"""TLS as the OS trusts it (docs/circle-api.md §7): CircleService's installer puts its certificate in the
OS trust store, which is what browsers, and so Circle's JS SDK, rely on. ``truststore`` verifies
against that store (Keychain on macOS, CryptoAPI on Windows, the distribution's bundle on Linux);
``CIRCLE_CA_FILE`` and ``SSL_CERT_FILE`` add anchors to it, they do not replace it."""

from __future__ import annotations

import os
import ssl

from .._errors import BadConfiguration


def trust_context(ca_file: str | None, environ: dict[str, str] | None = None) -> ssl.SSLContext:
    """A client context trusting the OS store, plus ``ca_file`` and ``$SSL_CERT_FILE`` when set.
    Raises BadConfiguration naming the setting whose file cannot be loaded."""
    import truststore  # only here: a bridge whose every URL is plain http never builds a context

    env = os.environ if environ is None else environ
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for setting, path in (("CIRCLE_CA_FILE", ca_file), ("SSL_CERT_FILE", env.get("SSL_CERT_FILE"))):
        if not path:
            continue
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise BadConfiguration(f"cannot load {setting} {path}: {reason}", invalid=[setting]) from None
    return context

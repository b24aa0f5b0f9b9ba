"""`circle-bridge demo`'s second walk: secret, lock, the backend's decryption, unlock; and what it
must never print (a usable unlock code, the private key)."""

from __future__ import annotations

import re
import subprocess
import sys

UNLOCK_CODE = re.compile(r"\b[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}\b")
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/=]{1000,}")


def test_demo_walks_secret_lock_decrypt_unlock_and_prints_no_usable_code() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "circle_bridge", "demo", "--trace"], capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    steps = [line for line in out.splitlines() if re.match(r"^\d+\. ", line)]
    assert [s.split()[1] for s in steps[5:]] == [
        "circle/createCircle",
        "circle/putSecret",
        "circle/getSecret",
        "circle/whoAmI",
        "circle/lockUser",
        "circle/whoAmI",
        "circle/getSecret",
        "backend:",
        "circle/unlockUser",
        "circle/whoAmI",
    ]
    assert "value='sk-demo-12345'" in steps[7]
    assert [s.rsplit(" ", 1)[1] for s in steps if "circle/whoAmI" in s] == [
        "locked=false",
        "locked=true",
        "locked=false",
    ]
    assert "-33004 Circle operation failed: User is locked" in steps[11]
    assert '"method": "circle/unlockUser"' in out  # the trace shows the call ...
    assert '"unlockCodes": "***"' in out  # ... with the codes masked
    for text in (out, demo.stderr):
        assert not UNLOCK_CODE.search(text)
        assert not LONG_BASE64.search(text)

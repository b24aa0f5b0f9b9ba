"""The server pins glibc's mmap threshold (issue 10: RSS growth with a flat Python heap). asyncio
reads into a fresh 256 KiB buffer; once glibc has raised its threshold, such a buffer is carved out
of the brk heap, and those holes are what made a long-running `serve` grow."""

from __future__ import annotations

import subprocess
import sys

import pytest

from circle_bridge._allocator import fix_mmap_threshold

PROBE = """
import os, sys
from circle_bridge._allocator import fix_mmap_threshold
pinned = fix_mmap_threshold() if sys.argv[1] == "pin" else False
big = bytearray(8 << 20)  # mmapped; freeing it raises glibc's dynamic threshold to 8 MiB
del big
r, w = os.pipe()
os.write(w, b"x" * 300)
data = os.read(r, 256 * 1024)  # as asyncio reads a pipe: a 256 KiB buffer shrunk to what came
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("[heap]"):
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
print(pinned, lo <= id(data) < hi)  # id() is the object's address in CPython
"""


def _probe(mode: str) -> tuple[bool, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60)
    pinned, on_heap = out.stdout.split()
    return pinned == "True", on_heap == "True"


def test_a_large_read_buffer_gets_its_own_mapping_once_the_threshold_is_pinned() -> None:
    assert _probe("default") == (False, True)  # glibc's default: the buffer lands in the heap
    assert _probe("pin") == (True, False)


@pytest.mark.parametrize(
    ("name", "value"),
    [("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536"), ("MALLOC_MMAP_THRESHOLD_", "65536")],
)
def test_the_users_own_allocator_tuning_wins(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    assert fix_mmap_threshold() is False

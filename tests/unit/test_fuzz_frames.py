"""CI's short budget of `make fuzz` (tools/fuzz_frames.py): every crash class and junk kind of
issue 11 mixed with valid requests, through a real Connection and Session, in memory."""

from __future__ import annotations

import asyncio

from tools.fuzz_frames import fuzz


def test_twenty_thousand_hostile_frames_crash_nothing_and_lose_nothing() -> None:
    tally = asyncio.run(fuzz(20_000, seed=20261129))
    assert tally.valid > 5_000
    assert len(tally.kinds) >= 15  # every hostile kind was sent
    assert (tally.crashes, tally.hangs, tally.unanswered, tally.answered_twice, tally.wrong_ids) == (0, 0, 0, 0, 0)

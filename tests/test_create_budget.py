"""The deployment-wide create ledger (Habu: 20 creations per API user per hour)."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest
from token_workers import book_creates

from airflow_provider_flowruns.core.create_budget import SharedCreateBudget
from airflow_provider_flowruns.core.errors import RateLimitBudgetExhausted

KEY = "https://habu.example/v1|client"


def test_a_sliding_window_books_up_to_the_limit_and_says_when_the_next_slot_frees():
    budget = SharedCreateBudget(jitter=0)
    first = budget.book(KEY, limit=3, window=2.0, what="run a")
    budget.book(KEY, limit=3, window=2.0, what="run b")
    budget.book(KEY, limit=3, window=2.0, what="run c")
    with pytest.raises(RateLimitBudgetExhausted, match="3 run creations allowed per hour") as exc:
        budget.book(KEY, limit=3, window=2.0, what="run d")
    assert exc.value.retry_at == pytest.approx(first.at + 2.0, abs=0.05)
    time.sleep(max(0.0, first.at + 2.0 - time.time()) + 0.05)
    budget.book(KEY, limit=3, window=2.0, what="run d")  # the oldest booking left the window


def test_a_cancelled_booking_gives_its_slot_back_and_a_vendor_refusal_blocks_everyone():
    budget = SharedCreateBudget(jitter=0)
    booking = budget.book(KEY, limit=1, window=60, what="a")
    with pytest.raises(RateLimitBudgetExhausted):
        budget.book(KEY, limit=1, window=60, what="b")
    budget.cancel(booking)  # the vendor rejected the request: nothing was created
    budget.book(KEY, limit=1, window=60, what="b")

    other = "https://habu.example/v1|someone-else"
    until = budget.refused(other, window=60)
    with pytest.raises(RateLimitBudgetExhausted) as exc:
        budget.book(other, limit=20, window=60, what="c")  # room in the ledger, but Habu said no
    assert exc.value.retry_at == pytest.approx(until, abs=0.05)


@pytest.mark.parametrize("hosts", ["one host", "four hosts"])
def test_four_processes_never_book_more_than_the_limit_between_them(tmp_path, hosts):
    """Four processes start together, each trying to book four creations against a limit of 10
    in one shared Variable. On one host the file lock orders them; on four only the lease does.
    Either way exactly 10 bookings succeed, all distinct, and the ledger holds exactly those."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        store, barrier = manager.dict(), manager.Barrier(4)
        jobs = [
            (store, str(tmp_path / ("locks" if hosts == "one host" else f"host{i}")), barrier, 4, 10)
            for i in range(4)
        ]
        with ctx.Pool(4) as pool:
            results = pool.starmap(book_creates, jobs, chunksize=1)
        (ledger,) = (json.loads(v) for v in dict(store).values())
    booked = [slot for got in results for slot in got if slot != "refused"]
    assert len(booked) == 10 and len(set(booked)) == 10, results
    assert sorted(slot for _, slot in ledger["created"]) == sorted(booked)
    assert "lease_owner" not in ledger  # every holder let go

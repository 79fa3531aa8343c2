"""The parts an interrupt relies on (issue 19, point 15): a worker pool that closes without waiting
for a stalled call, a halt that starts nothing more, a transport whose close unblocks a thread
reading a stalled answer (and no retry after it), whole journal lines, an honest message."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest

from ghcr_janitor.apply import journal as journal_module
from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.apply.results import interrupted_message
from ghcr_janitor.core.settings import HttpSettings
from ghcr_janitor.net import workers as workers_module
from ghcr_janitor.net.http import RegistryClient, mutations, send_sync
from ghcr_janitor.net.transport import StdlibTransport
from ghcr_janitor.net.workers import Workers


@pytest.fixture(autouse=True)
def _clean():
    workers_module.resume()
    mutations.clear()
    yield
    workers_module.resume()
    mutations.clear()


def _blocked_pool():
    """A one-thread pool whose first call blocks until `release` is set, a second call queued."""
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def stalled():
        started.set()
        release.wait(30)
        ran.append("stalled")
        return "late"

    def queued():
        ran.append("queued")

    return Workers(1), release, started, ran, stalled, queued


def test_closing_the_pool_abandons_a_stalled_call_and_never_runs_queued_ones():
    async def scenario():
        pool, release, started, ran, stalled, queued = _blocked_pool()
        first, second = pool.submit(stalled), pool.submit(queued)
        while not started.is_set():
            await asyncio.sleep(0.01)
        began = time.monotonic()
        abandoned = pool.close()
        took = time.monotonic() - began
        await asyncio.sleep(0)
        assert took < 0.5, f"close() waited {took:.2f} s for a stalled call"
        assert abandoned == 1 and pool.abandoned == 1
        assert first.cancelled() and second.cancelled()
        release.set()
        await asyncio.sleep(0.2)
        assert ran == ["stalled"], "a call queued behind the stalled one ran after close()"
        with pytest.raises(RuntimeError):
            pool.submit(queued)

    asyncio.run(scenario())


def test_a_halt_starts_no_further_call_in_any_pool():
    async def scenario():
        pool, release, started, ran, stalled, queued = _blocked_pool()
        first, second = pool.submit(stalled), pool.submit(queued)
        while not started.is_set():
            await asyncio.sleep(0.01)
        workers_module.halt()
        release.set()
        assert await first == "late"              # what had started finishes
        with pytest.raises(asyncio.CancelledError):
            await second
        assert ran == ["stalled"]
        pool.close()

    asyncio.run(scenario())


class _SilentServer:
    """Accepts connections, reads requests, never answers."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_closing_the_client_ends_a_request_the_server_stalls_at_once_and_retries_nothing(monkeypatch):
    server = _SilentServer()
    client = RegistryClient(policy=HttpSettings(wait=0.01), transport=StdlibTransport(default_timeout=60),
                            timeout=httpx.Timeout(60.0))
    outcome: list[BaseException | object] = []

    def request():
        try:
            outcome.append(send_sync(client, "DELETE", f"http://127.0.0.1:{server.port}/v2/x/manifests/sha256:ab"))
        except BaseException as exc:  # noqa: BLE001 - what the thread met is the point
            outcome.append(exc)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while server.accepted == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)                       # the thread is blocked reading the answer
        began = time.monotonic()
        client.close()
        thread.join(5)
        took = time.monotonic() - began
        assert not thread.is_alive() and took < 1.0, f"the request thread still blocked after {took:.2f} s"
        assert isinstance(outcome[0], (httpx.TransportError, RuntimeError)), outcome
        time.sleep(0.1)
        assert server.accepted == 1, "a closed client retried the request"
    finally:
        server.close()


def test_journal_writes_each_line_whole_in_one_write(tmp_path, monkeypatch):
    writes: list[bytes] = []
    real_write = journal_module.os.write

    def counting_write(fd, data):
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(journal_module.os, "write", counting_write)
    path = tmp_path / "plan.json.journal"
    journal = Journal(path, "plan-a")
    for i in range(3):
        journal.record(f"t|delete|cache-{i}|sha256:{i}|", "done")
    assert len(writes) == 3
    assert all(w.endswith(b"\n") and w.count(b"\n") == 1 and json.loads(w) for w in writes)
    assert journal.counts == {"done": 3}
    assert Journal(path, "plan-a").done == {f"t|delete|cache-{i}|sha256:{i}|" for i in range(3)}


def test_a_line_torn_by_an_older_crash_does_not_swallow_the_next_one(tmp_path):
    path = tmp_path / "plan.json.journal"
    path.write_text(json.dumps({"plan": "p", "key": "k1", "status": "done"}) + '\n{"plan": "p", "ke')
    Journal(path, "p").record("k2", "done")
    assert path.read_text().endswith("\n")
    assert Journal(path, "p").done == {"k1", "k2"}


def _journal_after(record: bool) -> Journal:
    journal = Journal(None)
    journal.record("a", "done")
    journal.record("b", "skipped")
    if record:
        journal.record("c", "done")
    return journal


def test_the_message_names_a_delete_abandoned_in_flight_as_of_unknown_outcome():
    journal = _journal_after(record=False)
    mutation = mutations.begin("DELETE", "http://127.0.0.1:5000/v2/acme/app/manifests/sha256:abc")
    mutation.started = True
    message = interrupted_message(20, journal, "rerun `janitor apply plan.json` to continue")
    assert message == ("interrupted: 1 of 20 actions done, 1 skipped, 1 in flight abandoned "
                       "(DELETE /v2/acme/app/manifests/sha256:abc: its outcome is unknown; a rerun re-checks it); "
                       "rerun `janitor apply plan.json` to continue")


def test_the_message_never_claims_nothing_was_in_flight_for_an_answer_not_yet_journalled():
    journal = _journal_after(record=False)
    mutations.settle(mutations.begin("DELETE", "http://h/v2/x/manifests/sha256:abc"))   # answered, not recorded
    assert "1 answered but interrupted before it was journalled" in interrupted_message(5, journal, "rerun")
    journal.record("c", "done")                                                          # now recorded
    assert interrupted_message(5, journal, "rerun") == "interrupted: 2 of 5 actions done, 1 skipped; rerun"


def test_a_request_never_started_is_not_reported_in_flight():
    mutations.begin("DELETE", "http://h/v2/x/manifests/sha256:abc")    # queued, cancelled before a worker took it
    assert mutations.in_flight() == []


def test_a_sigint_the_kernel_hands_to_a_worker_thread_still_interrupts_at_once():
    """A terminal's Ctrl-C goes to the whole process: any thread may receive it. The event loop,
    asleep while a stalled request blocks a worker, must still wake and answer it."""
    import signal

    import typer

    from ghcr_janitor.cli.common import run

    pool = Workers(1)
    release, started = threading.Event(), threading.Event()
    ident: list[int] = []

    def stalled():
        ident.append(threading.get_ident())
        started.set()
        release.wait(10)                      # a request the server never answers (bounded here)

    async def body():
        return await pool.submit(stalled)

    def ctrl_c():
        started.wait(10)
        time.sleep(0.1)
        signal.pthread_kill(ident[0], signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    began = time.monotonic()
    try:
        with pytest.raises(typer.Exit) as exit_:
            run(body, lambda: "interrupted: test")
        took = time.monotonic() - began - 0.1
    finally:
        release.set()
        pool.close()
    assert exit_.value.exit_code == 130
    assert took < 1.0, f"the interrupt was answered {took:.2f} s after the signal"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

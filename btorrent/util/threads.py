"""
Disk work and hashing in worker threads, their results back on the
reactor's thread as L{Deferred}s.

L{ThreadRunner} is C{deferToThreadPool} over the standard library's
L{concurrent.futures.ThreadPoolExecutor} rather than Twisted's
L{twisted.python.threadpool.ThreadPool}: every piece verified and written
is a job, and Twisted's pool hands each job through a coordinator thread
and a team of workers (two queue handoffs and their locks per job), which
cost a downloading torrent 0.3-0.4 CPU seconds per GiB more than the
executor's one queue.  Results come back through C{reactor.callFromThread},
as with Twisted's pool.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

__all__ = ["ThreadRunner"]


class ThreadRunner:
    """
    Runs functions in up to C{maxThreads} threads.  Calling it,
    C{runner(f, *args, **kwargs)}, gives a L{Deferred} that fires on the
    reactor's thread with C{f}'s result or failure.

    Jobs given before L{start} wait for it; L{stop} waits for the jobs
    under way and queued, and jobs given after it fail.

    @ivar started: between L{start} and L{stop}.
    """

    def __init__(self, reactor, maxThreads: int = 8, name: str = "btorrent") -> None:
        """
        @param reactor: provides C{callFromThread}.
        @param maxThreads: threads at most.
        @param name: the threads' name prefix.
        """
        self.reactor = reactor
        self.maxThreads = maxThreads
        self.name = name
        self.started = False
        self._stopped = False
        self._executor: Optional[ThreadPoolExecutor] = None
        self._waiting: List[Tuple[Deferred, Callable, tuple, dict]] = []

    def start(self) -> None:
        """
        Start the threads (as jobs come) and run the jobs given so far.
        """
        if self.started:
            return
        self.started = True
        self._stopped = False
        self._executor = ThreadPoolExecutor(
            max_workers=self.maxThreads, thread_name_prefix=self.name
        )
        waiting, self._waiting = self._waiting, []
        for d, f, args, kwargs in waiting:
            self._submit(d, f, args, kwargs)

    def stop(self) -> None:
        """
        Wait for every job given so far, then stop the threads.
        """
        self._stopped = True
        self.started = False
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def __call__(self, f: Callable, *args: Any, **kwargs: Any) -> Deferred:
        """
        Run C{f(*args, **kwargs)} in a thread.

        @return: a L{Deferred} of its result, fired on the reactor's thread.
        """
        if self._stopped:
            return fail(RuntimeError("the thread runner is stopped"))
        d: Deferred = Deferred()
        if self._executor is None:
            self._waiting.append((d, f, args, kwargs))
        else:
            self._submit(d, f, args, kwargs)
        return d

    def _submit(self, d: Deferred, f: Callable, args: tuple, kwargs: dict) -> None:
        future = self._executor.submit(f, *args, **kwargs)
        callFromThread = self.reactor.callFromThread

        def done(future: Future) -> None:
            # In the worker thread (or here, if it is done already).
            callFromThread(_deliver, d, future)

        future.add_done_callback(done)


def _deliver(d: Deferred, future: Future) -> None:
    error = future.exception()
    if error is None:
        d.callback(future.result())
    else:
        d.errback(Failure(error, type(error), error.__traceback__))

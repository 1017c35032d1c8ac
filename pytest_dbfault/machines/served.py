"""Helper processes forked by one warm fork server instead of started as new interpreters.

The data-loss machine runs small scripts in other processes (a worker writing through its own runtime,
a lock probe, another application's reader or writer); the restart machine runs its kill -9 workers the
same way. Each must be a real, separate process: its own POSIX locks on the database (a lock probe from
this process would see nothing, POSIX locks never conflict within one), its own SQLite, and a SIGKILL
that stops it mid-commit. A new interpreter per script gives that, but pays its start (about 20 ms for a
bare one, 150 ms with the runtime imported: measured 165 ms a worker, 23 ms a probe, 26 s of wall time
of a 30-example run of the data-loss machine, of which 3.3 s CPU of its own).

Here every such process is a fork of multiprocessing's ``forkserver``: a fresh single-threaded
interpreter started once per test run, with the runtime (and the harness) already imported
(:data:`PRELOAD`). A child forked from it is as separate as one started afresh (its own pid, its own
locks, killable), and inherits nothing of the calling process: not its threads, open connections or
locks, which a fork of the calling process would (the runtime runs threads; a child forked from a
threaded process may hang on a lock held at the fork). What differs from ``python -c SCRIPT``: the
modules of :data:`PRELOAD` are already imported when the script starts, so import-time work is not
repeated (nothing in them reads the environment or the files at import). The environment and the
working directory are the caller's at the time of the call, as for a new interpreter.

:func:`run_script` is ``subprocess.run([sys.executable, "-c", script, *argv], capture_output=True,
text=True, timeout=...)``; :func:`start_script` is ``subprocess.Popen`` of the same with the three
standard streams piped. Where the fork server is not available (no ``fork``), both start a new
interpreter as before.
"""

from __future__ import annotations

import builtins
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
from typing import IO, Any

#: Imported once by the fork server, so each process it forks starts with the runtime already loaded.
PRELOAD = ["reliability", "pytest_dbfault.machines.kill_worker", "pytest_dbfault.machines", "pytest"]
#: Encoding of the scripts' standard streams (as ``text=True`` decodes a new interpreter's output).
ENCODING = "utf-8"


def available() -> bool:
    """True where processes can be forked from the fork server (POSIX with ``fork``)."""
    return hasattr(os, "fork") and "forkserver" in multiprocessing.get_all_start_methods()


def context() -> Any:
    """Multiprocessing's ``forkserver`` context with :data:`PRELOAD` (read when the server starts, once per run)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_server() -> None:
    """Start the fork server now and wait until it serves (its preload done): what a test run pays once (0.4 s),
    not the first process forked from it. (It starts on first use otherwise.)"""
    if available():
        run_script("pass", [], timeout=120)


class _PassFd:
    """A file descriptor of this process, duplicated into the forked child (as multiprocessing passes pipes)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        from multiprocessing import reduction

        return _received_fd, (reduction.DupFd(self.fd),)


def _received_fd(dup: Any) -> int:
    return dup.detach()


def _run_in_child(script: str, argv: list[str], environ: dict[str, str], cwd: str,
                  stdin: int, stdout: int, stderr: int) -> None:
    """The forked child's body: the caller's streams, environment and directory, then ``script`` as ``__main__``.

    Its exit status is the script's, as multiprocessing reports it: 0 when it ends, ``sys.exit``'s code, 1 with
    the traceback on stderr when it raises, ``-signal`` when killed."""
    # The streams inherited from the server let go of fds 0-2 first: multiprocessing's /dev/null stdin would
    # close fd 0 (the caller's pipe by then) when collected. The new ones are flushed by multiprocessing at exit.
    for old in (sys.stdin, sys.stdout, sys.stderr):
        if old is not None:
            try:
                old.flush()
            except (OSError, ValueError):  # closed already
                pass
    if sys.stdin is not None:
        sys.stdin.close()
    for fd, std in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, std)
        os.close(fd)
    sys.stdin = open(0, encoding=ENCODING, closefd=False)  # noqa: SIM115 - the process's own stream
    sys.stdout = open(1, "w", encoding=ENCODING, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding=ENCODING, closefd=False, buffering=1)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    sys.argv = ["-c", *argv]
    exec(compile(script, "<string>", "exec"), {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102


class ServedProcess:
    """A script running in a process forked by the fork server, seen as the ``subprocess.Popen`` it replaces:
    ``stdin``/``stdout`` text pipes, ``communicate``, ``kill``, ``returncode`` (``-9`` after a SIGKILL)."""

    def __init__(self, script: str, argv: list[str]) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        # stderr to a file: read once the process ended, so a chatty child never blocks on a full pipe.
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        try:
            self.process = context().Process(
                target=_run_in_child, name="dbfault-served", daemon=False,
                args=(script, argv, dict(os.environ), os.getcwd(), _PassFd(in_r), _PassFd(out_w),
                      _PassFd(self._err.fileno())))
            self.process.start()
        except BaseException:
            for fd in (in_w, out_r):
                os.close(fd)
            self._err.close()
            raise
        finally:  # the child has its own copies: EOF on stdout when it ends
            os.close(in_r)
            os.close(out_w)
        self.pid: int = self.process.pid
        self.stdin: IO[str] = open(in_w, "w", encoding=ENCODING)  # noqa: SIM115 - closed in communicate()
        self.stdout: IO[str] = open(out_r, encoding=ENCODING)  # noqa: SIM115
        #: The exit code once ended (``-signal`` when killed by one, as ``subprocess`` says), else None.
        self.returncode: int | None = None
        self._stderr_text: str | None = None

    def poll(self) -> int | None:
        """The exit code once the process ended, else None."""
        if self.returncode is None and self._stderr_text is None:
            self.returncode = self.process.exitcode
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the process (unless it ended already: the fork server reaps it, its pid may be reused)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended between the poll and the kill
                pass

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process; its exit code. :raises subprocess.TimeoutExpired: still running after ``timeout``."""
        if self._stderr_text is not None:  # ended and reaped (the process object is closed)
            assert self.returncode is not None
            return self.returncode
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("dbfault-served", timeout or 0.0)
        self.returncode = self.process.exitcode
        if self._stderr_text is None:
            self._err.seek(0)
            self._stderr_text = self._err.read().decode(ENCODING, errors="replace")
            self._err.close()
            self.process.close()  # its sentinel pipe: many processes per run
        return self.returncode

    def communicate(self, input: str = "", timeout: float | None = None) -> tuple[str, str]:  # noqa: A002
        """Send ``input``, close stdin, read stdout to its end, wait: ``(stdout, stderr)`` as ``Popen.communicate``.

        :raises subprocess.TimeoutExpired: the process is still running after ``timeout`` (it is not killed)."""
        # The deadline kills nothing itself: it closes our ends, which ends a read stuck on a live process.
        expired = threading.Event()

        def give_up() -> None:
            expired.set()
            self.kill()

        timer = threading.Timer(timeout, give_up) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            if not self.stdin.closed:
                try:
                    if input:
                        self.stdin.write(input)
                    self.stdin.close()
                except BrokenPipeError:  # it ended without reading its input (as Popen.communicate ignores)
                    pass
            out = self.stdout.read()
            self.stdout.close()
            self.wait()
        finally:
            if timer is not None:
                timer.cancel()
        if expired.is_set() and self.returncode == -signal.SIGKILL:
            raise subprocess.TimeoutExpired("dbfault-served", timeout or 0.0, output=out)
        assert self._stderr_text is not None
        return out, self._stderr_text


def start_script(script: str, argv: list[str]) -> Any:
    """``subprocess.Popen([sys.executable, "-c", script, *argv])`` with stdin, stdout and stderr piped (text), from
    the fork server where it is available (:class:`ServedProcess`), else a new interpreter."""
    if not available():
        return subprocess.Popen([sys.executable, "-c", script, *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return ServedProcess(script, argv)


def run_script(script: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=timeout)``,
    from the fork server where it is available. :raises subprocess.TimeoutExpired: as ``subprocess.run`` (the
    process is killed first)."""
    if not available():
        return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=timeout)
    proc = ServedProcess(script, argv)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return subprocess.CompletedProcess([sys.executable, "-c", script, *argv], proc.returncode or 0, out, err)

"""Helper processes forked by warm fork servers instead of started as new interpreters.

The data-loss machine runs small scripts in other processes (a worker writing through its own runtime,
a lock probe, another application's reader or writer); the restart machine runs its kill -9 workers the
same way. Each must be a real, separate process: its own POSIX locks on the database (a lock probe from
this process would see nothing, POSIX locks never conflict within one), its own SQLite, and a SIGKILL
that stops it mid-commit. A new interpreter per script gives that, but pays its start (about 20 ms for a
bare one, 150 ms with the runtime imported: measured 165 ms a worker, 23 ms a probe, 26 s of wall time
of a 30-example run of the data-loss machine, of which 3.3 s CPU of its own).

So every such process is a fork of a server started once per test run: a fresh single-threaded
interpreter that has imported what the processes need and opened no database. A child forked from it is
as separate as one started afresh (its own pid, its own locks, killable), and inherits nothing of the
calling process: not its threads, open connections or locks, which a fork of the calling process would
(the runtime runs threads; a child forked from a threaded process may hang on a lock held at the fork).

* The scripts (:func:`run_script`, :func:`start_script`) come from the script server
  (:data:`SCRIPT_SERVER`, a few lines over a Unix socket): about 2 ms a process, where multiprocessing's
  fork server (below) took 12 ms (its child unpickles its preparation and re-runs the caller's main module).
  What differs from ``python -c SCRIPT``: the modules of :data:`SCRIPT_PRELOAD` are already imported (nothing
  in them reads the environment or the files at import), ``sys.path`` is the caller's, and no ``atexit``
  handler runs at the end (the process ends with ``os._exit`` after flushing its streams; the runtime
  registers one only for an operation log, which these scripts leave off). The environment and the
  working directory are the caller's at the time of the call.
* The restart machine's kill -9 workers run a pickled function: they come from multiprocessing's
  ``forkserver`` (:func:`context`) with :data:`PRELOAD`.

:func:`run_script` is ``subprocess.run([sys.executable, "-c", script, *argv], capture_output=True,
text=True, timeout=...)``; :func:`start_script` is ``subprocess.Popen`` of the same with the three
standard streams piped. Where the servers cannot run (no ``fork``), both start a new interpreter as before.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from typing import IO, Any

#: Imported once by multiprocessing's fork server, so each kill -9 worker starts with the runtime loaded.
PRELOAD = ["reliability", "pytest_dbfault.machines.kill_worker", "pytest_dbfault.machines", "pytest"]
#: Encoding of the scripts' standard streams (as ``text=True`` decodes a new interpreter's output).
ENCODING = "utf-8"


def available() -> bool:
    """True where processes can be forked from the servers (POSIX with ``fork`` and descriptor passing)."""
    return (hasattr(os, "fork") and hasattr(socket, "send_fds")
            and "forkserver" in multiprocessing.get_all_start_methods())


def context() -> Any:
    """Multiprocessing's ``forkserver`` context with :data:`PRELOAD` (read when the server starts, once per run)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_server() -> None:
    """Start both servers now and wait until they serve (their imports done): what a test run pays once (0.4 s
    and 0.15 s), not the first process forked from each. (They start on first use otherwise.)"""
    if available():
        run_script("pass", [], timeout=120)
        process = context().Process(target=os.getpid, name="dbfault-warm-up")
        process.start()
        process.join()
        process.close()


class _PassFd:
    """A file descriptor of this process, duplicated into the forked child (as multiprocessing passes pipes)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        from multiprocessing import reduction

        return _received_fd, (reduction.DupFd(self.fd),)


def _received_fd(dup: Any) -> int:
    return dup.detach()


#: The script server: ``python -c SCRIPT_SERVER FD SYS_PATH MODULE...``. Imports the modules (what the scripts use),
#: then forks one child per request arriving on the socket ``FD`` (a JSON ``{"script", "argv", "env", "cwd"}`` with the
#: child's stdin, stdout and stderr and a status socket): it answers the child's pid on the status socket, and its
#: exit code (as ``subprocess`` gives it: ``-9`` after a SIGKILL) when it has reaped it. It ends when ``FD`` closes.
#: Single-threaded, no database opened: a fork of it inherits no lock, no connection and no thread.
SCRIPT_SERVER = r"""
import json, os, select, signal, socket, sys
sys.path[:] = json.loads(sys.argv[2])
for name in sys.argv[3:]:
    __import__(name)
requests = socket.socket(fileno=int(sys.argv[1]))
wake_r, wake_w = os.pipe()
os.set_blocking(wake_r, False)
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *args: None)
status = {}


def run(request, fds):
    for fd, std in zip(fds, (0, 1, 2)):
        os.dup2(fd, std)
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["-c", *request["argv"]]
    code = 0
    try:
        exec(compile(request["script"], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException as exc:  # reported as python -c reports it (the server's own frame left out)
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        code = 1
    return code


while True:
    ready = select.select([requests, wake_r], [], [])[0]
    if wake_r in ready:
        while True:
            try:
                if not os.read(wake_r, 512):
                    break
            except BlockingIOError:
                break
        while status:
            try:
                pid, how = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            answer = status.pop(pid, None)
            if answer is not None:
                try:
                    answer.send(str(os.waitstatus_to_exitcode(how)).encode())
                except OSError:
                    pass
                answer.close()
    if requests in ready:
        message, fds, _, _ = socket.recv_fds(requests, 1 << 20, 4)
        if not message:
            break
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                requests.close()
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in (wake_r, wake_w, fds[3]):
                    os.close(fd)
                for answer in status.values():
                    answer.close()
                code = run(json.loads(message), fds[:3])
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                os._exit(code)
        for fd in fds[:3]:
            os.close(fd)
        answer = socket.socket(fileno=fds[3])
        answer.send(str(pid).encode())
        status[pid] = answer
"""
#: What the script server imports before it forks: the runtime and what the scripts import.
SCRIPT_PRELOAD = ["reliability", "sqlite3", "json", "pathlib", "importlib", "random", "signal"]


class _ScriptServer:
    """The script server of this process (:data:`SCRIPT_SERVER`), started on first use."""

    _current: _ScriptServer | None = None

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", SCRIPT_SERVER, str(theirs.fileno()),
                                          json.dumps(sys.path), *SCRIPT_PRELOAD],
                                         pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.requests = mine
        self.owner = os.getpid()
        self.lock = threading.Lock()

    @classmethod
    def get(cls) -> _ScriptServer:
        """This process's server (a fork of this process starts its own: the socket is not shared)."""
        server = cls._current
        if server is None or server.owner != os.getpid() or server.proc.poll() is not None:
            server = cls._current = cls()
        return server

    def fork(self, script: str, argv: list[str], stdin: int, stdout: int, stderr: int) -> tuple[int, socket.socket]:
        """Fork a child running ``script``; its pid and the socket its exit code arrives on."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"script": script, "argv": argv, "env": dict(os.environ), "cwd": os.getcwd()})
        try:
            with self.lock:
                socket.send_fds(self.requests, [request.encode()], [stdin, stdout, stderr, theirs.fileno()])
        finally:
            theirs.close()
        answer = mine.recv(64)
        if not answer:
            mine.close()
            raise RuntimeError(f"the script server (pid {self.proc.pid}) ended (exit {self.proc.poll()})")
        return int(answer), mine


class ServedProcess:
    """A script running in a process forked by the script server, seen as the ``subprocess.Popen`` it replaces:
    ``stdin``/``stdout`` text pipes, ``communicate``, ``kill``, ``returncode`` (``-9`` after a SIGKILL)."""

    def __init__(self, script: str, argv: list[str]) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        # stderr to a file: read once the process ended, so a chatty child never blocks on a full pipe.
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        try:
            self.pid, self._status = _ScriptServer.get().fork(script, argv, in_r, out_w, self._err.fileno())
        except BaseException:
            for fd in (in_w, out_r):
                os.close(fd)
            self._err.close()
            raise
        finally:  # the child has its own copies: EOF on stdout when it ends
            os.close(in_r)
            os.close(out_w)
        self.stdin: IO[str] = open(in_w, "w", encoding=ENCODING)  # noqa: SIM115 - closed in communicate()
        self.stdout: IO[str] = open(out_r, encoding=ENCODING)  # noqa: SIM115
        #: The exit code once ended (``-signal`` when killed by one, as ``subprocess`` says), else None.
        self.returncode: int | None = None
        self._stderr_text: str | None = None

    def _take_status(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        if not select.select([self._status], [], [], timeout)[0]:
            return
        answer = self._status.recv(64)
        self._status.close()
        if not answer:
            raise RuntimeError(f"the script server ended before process {self.pid} did")
        self.returncode = int(answer)

    def poll(self) -> int | None:
        """The exit code once the process ended, else None."""
        self._take_status(0)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the process (unless it ended already: the server reaps it, its pid may be reused)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended between the poll and the kill
                pass

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process; its exit code. :raises subprocess.TimeoutExpired: still running after ``timeout``."""
        self._take_status(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired("dbfault-served", timeout or 0.0)
        if self._stderr_text is None:
            self._err.seek(0)
            self._stderr_text = self._err.read().decode(ENCODING, errors="replace")
            self._err.close()
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

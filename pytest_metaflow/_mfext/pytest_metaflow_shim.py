# pytest-metaflow's shim: the process Metaflow starts, waits on, reads and kills, standing in
# for `python <argv>` while a warm process forks the real one. Two uses, one protocol:
# - a task: the task zygote (pytest_metaflow_launcher.py) writes this file with a
#   `#!<python> -IS` line as the runtime's sys.executable; PYTEST_METAFLOW_ZYGOTE is set;
# - a run's root: the plugin runs `python -I -S <this file> flow.py <args>` with
#   PYTEST_METAFLOW_SERVER set (the runtime server, pytest_metaflow_server.py).
# It sends argv, environment, cwd and fds 0/1/2 (SCM_RIGHTS), relays signals sent to it
# with kill(), and exits with the child's status; on "exec" it execs `python <argv>`.
# It starts once per task: it imports only built-in and C modules (socket, signal,
# threading and json would double its start-up) and sends marshal (the receiver runs
# this interpreter).
import _signal  # type: ignore[import-not-found,unused-ignore]  # the C module under signal, no stub
import _socket
import _thread
import marshal
import os
import sys

REAL = sys.executable
SIGS = {_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2}
WAITED = SIGS | {_signal.SIGCHLD}


def real() -> None:
    os.execv(REAL, [REAL] + sys.argv[1:])


def main() -> None:
    # Both popped: neither address reaches the child (or the real interpreter).
    zygote = os.environ.pop("PYTEST_METAFLOW_ZYGOTE", None)
    server = os.environ.pop("PYTEST_METAFLOW_SERVER", None)
    address = zygote or server
    if not address or len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        real()
        return
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        s.connect("\0" + address)
        body = marshal.dumps({"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()})
        _signal.pthread_sigmask(_signal.SIG_BLOCK, WAITED)
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))  # a C int array
        s.sendmsg([body], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        reply = s.recv(64)
    except OSError:
        reply = b""
    if not reply.isdigit():
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, WAITED)
        real()
    pid = int(reply)
    # Our copies of the pipes must not keep them open: the reader sees EOF when the child closes them.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    done: list[bytes] = []
    main_thread = _thread.get_ident()

    def wait() -> None:
        try:
            data = s.recv(64)
        except OSError:
            data = b""
        done.append(data)
        _signal.pthread_kill(main_thread, _signal.SIGCHLD)  # wakes sigwaitinfo below

    _thread.start_new_thread(wait, ())
    while True:
        info = _signal.sigwaitinfo(WAITED)
        if info.si_signo == _signal.SIGCHLD:
            if done:
                break
            continue
        # A signal from a terminal (SI_KERNEL) is not relayed: it reached a task's process
        # group already, and a served runtime leads its own session.
        if info.si_code <= 0:
            try:
                os.kill(pid, info.si_signo)
            except OSError:
                pass
    data = done[0]
    if not data.lstrip(b"-").isdigit():  # the forking process died: so did the child (PDEATHSIG)
        os.kill(os.getpid(), _signal.SIGKILL)
    status = int(data)
    if os.WIFSIGNALED(status):
        # Die of the same signal, so that the parent sees the same return code (-N).
        sig = os.WTERMSIG(status)
        _signal.signal(sig, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os.kill(os.getpid(), _signal.SIGKILL)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


main()

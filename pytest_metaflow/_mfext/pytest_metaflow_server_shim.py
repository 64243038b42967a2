# pytest-metaflow runtime server shim: the Runner's process for a run the server may fork
# (run as `python -I -S <this file> flow.py <args>`). The same protocol as the task shim
# of pytest_metaflow_launcher.py (SHIM), with the real interpreter being the one running
# this file. Stdlib only. Made from that SHIM; keep the two in step.
import array
import os
import signal
import socket
import sys
import threading

REAL = sys.executable
SIGS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}


def real() -> None:
    os.execv(REAL, [REAL] + sys.argv[1:])


def main() -> None:
    address = os.environ.pop("PYTEST_METAFLOW_SERVER", None)
    if not address or len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        real()
        return
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect("\0" + address)
        import json

        body = json.dumps({"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}).encode()
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGS | {signal.SIGCHLD})
        s.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        reply = s.recv(64)
    except OSError:
        reply = b""
    if not reply.isdigit():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGS | {signal.SIGCHLD})
        real()
    pid = int(reply)
    # Our copies of the pipes must not keep them open: the Runner sees EOF when the runtime closes them.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    done: list[bytes] = []
    main_thread = threading.get_ident()

    def wait() -> None:
        try:
            data = s.recv(64)
        except OSError:
            data = b""
        done.append(data)
        signal.pthread_kill(main_thread, signal.SIGCHLD)  # wakes sigwaitinfo below

    threading.Thread(target=wait, daemon=True).start()
    while True:
        info = signal.sigwaitinfo(SIGS | {signal.SIGCHLD})
        if info.si_signo == signal.SIGCHLD:
            if done:
                break
            continue
        # A signal from a terminal (SI_KERNEL) is not relayed (the runtime leads its own session).
        if info.si_code <= 0:
            try:
                os.kill(pid, info.si_signo)
            except OSError:
                pass
    data = done[0]
    if not data.lstrip(b"-").isdigit():  # the server died: so did the runtime (PDEATHSIG)
        os.kill(os.getpid(), signal.SIGKILL)
    status = int(data)
    if os.WIFSIGNALED(status):
        # Die of the same signal, so that the runtime sees the same return code (-N).
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


main()

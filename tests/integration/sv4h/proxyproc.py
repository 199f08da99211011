"""Runs the real sigv4d binary for a test and watches it.

The process gets a free loopback port (--port 127.0.0.1:N), a controlled environment
(fixed test credentials, no AWS config files, no SSL_CERT_* unless given), its stderr
goes to a file the test can read, and its memory is read from /proc (VmHWM is the peak
resident set size).
"""
import os
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class ProxyStartError(AssertionError):
    pass


class Proxy:
    """One sigv4d process. start() returns once it accepts TCP connections on .port."""

    def __init__(self, binary, args, env, log_path, port=None):
        self.binary, self.args, self.env, self.log_path = binary, list(args), env, log_path
        self.port = port or free_port()
        self.proc = None
        self.stopped_by_test = False  # the test sent SIGTERM itself: an exit is no crash
        self.exit_code_before_stop = None

    @property
    def argv(self):
        return [self.binary, "--port", f"127.0.0.1:{self.port}"] + self.args

    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s=10.0):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProxyStartError(
                    f"sigv4d exited with {self.proc.returncode} before listening\n"
                    f"argv: {' '.join(self.argv)}\noutput:\n{self.output()[-4000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise ProxyStartError(f"sigv4d did not listen on 127.0.0.1:{self.port} within "
                              f"{timeout_s}s\noutput:\n{self.output()[-4000:]}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self):
        """Everything the process wrote to stdout/stderr so far."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def peak_rss_kib(self):
        """VmHWM: the peak resident set size so far."""
        return proc_status_kib(self.pid, "VmHWM")

    def rss_kib(self):
        return proc_status_kib(self.pid, "VmRSS")

    def threads(self):
        return proc_status_kib(self.pid, "Threads")

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def sigterm(self):
        """Sends SIGTERM now (graceful-shutdown tests); the fixture then expects the exit."""
        self.stopped_by_test = True
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout_s=10.0):
        """SIGTERM, wait, SIGKILL if needed. Returns the exit status; remembers whether the
        process had already died on its own (a crash) before stop() was called."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.exit_code_before_stop = self.proc.returncode
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

"""External clients used by the tests: curl and helpers around them."""
import os
import subprocess


def _client_env():
    # No proxy settings from the environment: the tests choose exactly where curl goes.
    return {k: v for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def curl(*args, timeout=60):
    """Run /usr/bin/curl; returns CompletedProcess with bytes stdout/stderr.
    Use -w '%{http_code}' style write-outs to read statuses."""
    return subprocess.run(["/usr/bin/curl", "--silent", "--show-error",
                           "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 10, env=_client_env())

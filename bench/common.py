"""What the benchmark scripts share: the accounts they create, the secret
their servers run with, and small helpers."""

import socket
import subprocess
import sys

ADMIN = "bench-admin@example.com"
USER = "bench-user@example.com"
PASSWORD = "benchmark passphrase orchid harbor"
DATA_ENCRYPTION_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
JWT_SECRET = "benchmark-secret-benchmark-secret-0123456789"


def say(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc, timeout=30):
    """Asks a server to stop (SIGTERM), and kills it if it has not within `timeout` s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()

"""``rediss://`` with certificate verification on by default (issue 17): a redis-server with
TLS on loopback, certificates from a throwaway CA made here with the openssl command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from reliability.servers import redis_server
from reliability.test_startup_and_secrets import cli
from webhelpers import require

import taskq
from taskq.worker import BackgroundWorker

require(shutil.which("openssl") is not None, "needs the openssl command (Debian's openssl package)", module=True)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=tmp)  # fmt: skip
    return tmp / f"{name}.pem", tmp / f"{name}.key"


def make_server_cert(tmp: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost, signed by ``ca``: (certificate, key)."""
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr", cwd=tmp)  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=tmp)  # fmt: skip
    return tmp / "server.pem", tmp / "server.key"


def tls_supported() -> bool:
    """A build with TLS takes --tls-port (and, listening nowhere, exits at once)."""
    done = subprocess.run(
        ["redis-server", "--port", "0", "--tls-port", "0"], capture_output=True, text=True, timeout=30
    )
    return "not listen anywhere" in done.stdout + done.stderr


def test_rediss_verifies_the_certificate(tmp_path: Path, workers: list[BackgroundWorker]) -> None:
    require(tls_supported(), "this redis-server was built without TLS")
    ca = make_ca(tmp_path, "ca")
    other_ca = make_ca(tmp_path, "other")
    cert, key = make_server_cert(tmp_path, ca)
    tls = ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca[0])]
    with redis_server(tmp_path, *tls, "--tls-auth-clients", "no", tls=True) as port:
        trusted = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca[0]}"
        with taskq.TaskQueue(trusted) as tq:

            @tq.task(queue="tls")
            def double(x: int) -> int:
                return 2 * x

            handle = double.enqueue(21)
            worker = tq.start_worker(queues=["tls"], idle_poll_s=0.1)
            workers.append(worker)
            assert handle.result(timeout_s=30) == 42
            worker.stop(grace_s=0)
        assert '"queued": 0' in cli(trusted, "stats", "--queue", "tls", "--json").stdout

        # verification is on by default: a certificate from a CA we did not name, or from
        # no CA we trust at all, is refused with a typed error (one line from the CLI)
        for untrusted in (f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={other_ca[0]}", f"rediss://127.0.0.1:{port}/0"):
            with taskq.TaskQueue(untrusted) as tq, pytest.raises(taskq.ServerUnavailable, match=r"(?i)certificate"):
                tq.stats("tls")
            done = cli(untrusted, "stats", check=False)
            assert done.returncode == 1 and "certificate" in done.stderr.lower() and "Traceback" not in done.stderr
        # and the plain protocol gets nowhere on the TLS port
        with taskq.TaskQueue(f"redis://127.0.0.1:{port}/0") as tq, pytest.raises(taskq.ServerUnavailable):
            tq.stats("tls")

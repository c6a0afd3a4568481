"""A real S3 endpoint for tests: moto's server on 127.0.0.1 (the S3 wire protocol, not mocks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import boto3

# moto accepts any credentials; fixed fake ones keep boto3 away from the machine's real ones.
TEST_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, env: dict | None = None) -> None:
        self.env = env or {}
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen | None = None
        # moto logs every request; a pipe nobody reads would fill up and stall the server.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"moto server exited: {self.log.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()

    def client(self, service: str = "s3", **credentials):
        return boto3.client(service, endpoint_url=self.endpoint_url, **{**TEST_CREDENTIALS, **credentials})

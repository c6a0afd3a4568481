"""A release download server for tests: serves a directory over HTTPS on 127.0.0.1 with a CA of its
own, as GitHub serves release assets and their sha256sums.txt.

    python -m tests.support.release_server DIR --max-seconds 3600

writes DIR/ca.crt (for the client's SSL_CERT_FILE) and DIR/port, then serves until --max-seconds
have passed (a test run that dies leaves no server behind for long)."""

from __future__ import annotations

import argparse
import functools
import http.server
import ssl
import threading
from pathlib import Path

from tests.support.tls import TestCA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--max-seconds", type=float, default=3600)
    args = parser.parse_args()
    ca = TestCA("qdrant-ops release server CA")
    cert, key = ca.issue(["localhost", "127.0.0.1"]).write(args.directory, "server")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(args.directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    (args.directory / "ca.crt").write_text(ca.cert_pem)
    (args.directory / "port").write_text(str(httpd.server_address[1]))
    threading.Timer(args.max_seconds, httpd.shutdown).start()
    httpd.serve_forever()


if __name__ == "__main__":
    main()

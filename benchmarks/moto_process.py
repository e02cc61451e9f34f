"""A moto S3 server in its own process, so serving S3 never competes with the timed code for the GIL."""

from __future__ import annotations

import sys


def main() -> None:
    """Start moto on 127.0.0.1 (any free port), print the port, serve until stdin closes."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(port, flush=True)
    try:
        sys.stdin.read()  # returns at EOF, when the parent closes our stdin or exits
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""moto's server in a process of its own (``python -m functions.local.moto_process [PORT]``).

The local runtime and the benchmarks start it as a child, so moto's request handling (a capture
object's PUT, say) runs on the other core instead of competing with the functions for this
process's GIL. It prints the port it listens on, and serves until its stdin closes: when the
parent closes the pipe or exits, however it exits.
"""

from __future__ import annotations

import logging
import sys


def main() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _, bound = server.get_host_and_port()
    print(bound, flush=True)
    try:
        sys.stdin.read()  # returns at EOF
    finally:
        server.stop()


if __name__ == "__main__":
    main()

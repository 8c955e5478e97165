#!/usr/bin/env python3
"""Runs moto's server on a free loopback port for the tests.

Prints ``LISTENING 127.0.0.1:<port>`` once it accepts requests, then serves until its
standard input closes, so it never outlives the test process that started it.
"""

import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"LISTENING {host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs moto's server on a free loopback port for the tests.

Prints ``LISTENING 127.0.0.1:<port>`` once it accepts requests, then serves until its
standard input closes, so it never outlives the test process that started it.
"""

import sys

from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer


def _fix_complete_multipart_upload_root() -> None:
    """moto 5.2.1 answers CompleteMultipartUpload with a ``CompleteMultipartUploadResponse``
    root element; S3 (and so the AWS SDKs) use ``CompleteMultipartUploadResult``."""
    serialized = S3Response.serialized

    def fixed(self, action_result):
        status, headers, body = serialized(self, action_result)
        if self.data.get("Action") == "CompleteMultipartUpload":
            if isinstance(body, bytes):
                body = body.replace(b"CompleteMultipartUploadResponse", b"CompleteMultipartUploadResult")
            else:
                body = body.replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult")
        return status, headers, body

    S3Response.serialized = fixed


def main() -> None:
    _fix_complete_multipart_upload_root()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"LISTENING {host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs moto's server on a free loopback port for the tests.

Prints ``LISTENING 127.0.0.1:<port>`` once it accepts requests, then serves until its
standard input closes, so it never outlives the test process that started it.

Besides moto's own API it serves one test-only endpoint, which writes straight into moto's
in-process Cognito backend what moto's admin API cannot make (see production_pool.py):

``POST /_test/production-pool`` with a JSON body
``{"shape": "...", "count": N, "seed": S, "name": "...", "region": "us-east-1",
"groups": [...], "users": [...]}`` — ``shape`` one of production_pool.SHAPES (required);
``count`` 0 to 1,000,000 (default 0: an empty pool of that shape, e.g. a restore target);
``seed`` an integer or string (default 0); ``name`` the pool's name (default
``production-<shape>-<seed>``); ``region`` (default us-east-1); ``groups`` the group names
(default production_pool.DEFAULT_GROUPS); ``users`` records to seed instead of generating
``count`` of them (e.g. production_pool.as_restored's). The groups are created only when
the pool gets users. Answers 200 ``{"pool_id": "...", "users": [...], "groups": [...]}``
(the users as seeded, each with its ``Groups``; the groups' CreateGroup settings), or 400
``{"error": "..."}``. Every other request goes to moto unchanged.
"""

import json
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.responses import S3Response
from werkzeug.serving import make_server

import production_pool

PRODUCTION_POOL_PATH = "/_test/production-pool"


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


def with_test_endpoints(app):
    """moto's WSGI app, with POST /_test/production-pool answered here."""

    def middleware(environ, start_response):
        if environ.get("PATH_INFO") != PRODUCTION_POOL_PATH or environ.get("REQUEST_METHOD") != "POST":
            return app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
            status, answer = "200 OK", production_pool.production_pool(json.loads(raw or b"{}"))
        except ValueError as e:  # a bad request (JSON errors are ValueErrors too)
            status, answer = "400 Bad Request", {"error": str(e)}
        except Exception as e:  # noqa: BLE001 - say what went wrong instead of a bare 500
            status, answer = "500 Internal Server Error", {"error": f"{type(e).__name__}: {e}"}
        body = json.dumps(answer, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json; charset=utf-8"),
                                ("Content-Length", str(len(body)))])
        return [body]

    return middleware


def main() -> None:
    _fix_complete_multipart_upload_root()
    # As moto's ThreadedMotoServer builds it, with the test endpoint in front.
    app = with_test_endpoints(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    print(f"LISTENING {host}:{port}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()

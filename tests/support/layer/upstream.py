"""Talking to the upstream moto server: forwarding a client's request as it came
(``forward``), the layer's own calls (``call``, not counted or recorded) and a whole pool read
in one go (``list_users``). Also which headers pass in each direction."""

import http.client
import json
import urllib.parse

from .protocol import JSON_CONTENT_TYPE, TARGET_PREFIX, AwsError

# Headers of moto's answer that are passed on to the client.
RELAYED_HEADERS = {"content-type", "x-amzn-requestid", "x-amzn-errortype", "x-amzn-errormessage"}
# Headers of the client's request that are not passed on to moto.
DROPPED_HEADERS = {"host", "content-length", "connection", "accept-encoding",
                   "transfer-encoding", "keep-alive", "expect"}


class Upstream:
    """The moto server at `url` (None: no upstream; every forward fails with a 500)."""

    def __init__(self, url):
        self.url = url
        if url:
            up = urllib.parse.urlsplit(url)
            self.host, self.port = up.hostname, up.port or 80
        else:
            self.host = self.port = None

    def forward(self, path, headers, body):
        """POST to moto on a new connection; (status, headers to relay, body)."""
        if self.host is None:
            raise AwsError(500, "InternalErrorException",
                           "upstream unreachable: the layer runs without --upstream")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            raise AwsError(500, "InternalErrorException", f"upstream unreachable: {e}") from None
        finally:
            conn.close()
        relayed = [(k, v) for k, v in resp.getheaders() if k.lower() in RELAYED_HEADERS]
        return resp.status, relayed, data

    def call(self, headers, op, body):
        """One call of the layer's own to moto (not counted, not recorded): (status, JSON)."""
        h = {k: v for k, v in headers.items() if k.lower() not in ("x-amz-target", "content-type")}
        h.update({"X-Amz-Target": TARGET_PREFIX + op, "Content-Type": JSON_CONTENT_TYPE})
        status, _, data = self.forward("/", h, json.dumps(body).encode())
        try:
            return status, json.loads(data) if data else {}
        except ValueError:
            return status, {}

    def list_users(self, pool, headers):
        """Every user of the pool, in moto's order (one big page); or (None, moto's error)."""
        users, token = [], None
        while True:
            req = {"UserPoolId": pool, "Limit": 1_000_000}
            if token:
                req["PaginationToken"] = token
            h = {k: v for k, v in headers.items() if k.lower() != "x-amz-target"}
            h["X-Amz-Target"] = TARGET_PREFIX + "ListUsers"
            status, relayed, data = self.forward("/", h, json.dumps(req).encode())
            if status != 200:
                return None, (status, relayed, data)
            answer = json.loads(data)
            users.extend(answer.get("Users", []))
            token = answer.get("PaginationToken")
            if not token:
                return users, None

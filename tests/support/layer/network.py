"""The network side of the layer: the HTTP server and its handler (keep-alive, TCP_NODELAY,
the ``/_layer/...`` endpoints), and what a client sees of the network and of AWS's service
plumbing: simulated latency (``--latency-ms``, ``--op-latency``), seeded faults (``--faults``:
throttling, HTTP 500, connection resets before and after the request reached moto;
``--fail-always``), expiring pagination tokens (``--token-ttl-seconds``, ``--expire-tokens``),
the request log (``--record``) and the per-op counters (``GET /_layer/stats``; also
``GET /_layer/synthetic``, the synthetic pools)."""

import json
import random
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .protocol import JSON_CONTENT_TYPE, TARGET_PREFIX, TOKEN_KEYS, AwsError, invalid
from .upstream import DROPPED_HEADERS

FAULT_KINDS = ("throttle", "500", "reset", "reset_after")


def parse_faults(spec):
    faults = []
    for item in spec.split(","):
        kind, _, p = item.strip().partition(":")
        if kind not in FAULT_KINDS:
            raise SystemExit(f"aws_layer: unknown fault kind {kind!r}")
        faults.append((kind, float(p)))
    if sum(p for _, p in faults) > 1.0:
        raise SystemExit("aws_layer: fault probabilities add up to more than 1")
    return faults


def parse_op_latency(specs):
    """{op: milliseconds} from `--op-latency OP=MS` options."""
    return {op: float(ms) for op, ms in (spec.split("=", 1) for spec in specs)}


class Stats:
    """Per-op counters ("calls", "throttled", "faults") and the request log (--record)."""

    def __init__(self, record_path):
        self.lock = threading.Lock()
        self.ops = {}
        self.record_file = open(record_path, "a", encoding="utf-8") if record_path else None

    def count(self, op, key):
        with self.lock:
            entry = self.ops.setdefault(op, {"calls": 0, "throttled": 0, "faults": 0})
            entry[key] += 1

    def json(self, triggers, messages):
        """GET /_layer/stats's answer, with the rules' triggers and messages."""
        with self.lock:
            ops = {op: dict(v) for op, v in self.ops.items()}
        return {"ops": ops,
                "total_calls": sum(v["calls"] for v in ops.values()),
                "total_throttled": sum(v["throttled"] for v in ops.values()),
                "total_faults": sum(v["faults"] for v in ops.values()),
                "triggers": triggers, "messages": messages}

    def reset(self):
        with self.lock:
            self.ops = {}

    def record(self, op, body):
        if self.record_file:
            with self.lock:
                self.record_file.write(json.dumps({"op": op, "body": body,
                                                   "at": round(time.time(), 3)}) + "\n")
                self.record_file.flush()


class Faults:
    """Which requests get a fault: --fail-always ops every time, the others at random (a
    generator seeded with --seed), within --fault-ops and --fault-budget."""

    def __init__(self, args, count):
        self.args, self.count = args, count
        self.lock = threading.Lock()
        self.faults = parse_faults(args.faults) if args.faults else []
        self.fault_ops = set(args.fault_ops.split(",")) if args.fault_ops else None
        self.fail_always = set(args.fail_always)
        self.rng = random.Random(args.seed)
        self.injected = 0

    def pick(self, op):
        """None, or the kind of fault to inject into this request."""
        if op in self.fail_always:
            self.count(op, "faults")
            return "fail"
        if not self.faults or (self.fault_ops is not None and op not in self.fault_ops):
            return None
        with self.lock:
            budget = self.args.fault_budget
            if budget is not None and self.injected >= budget:
                return None
            r, acc = self.rng.random(), 0.0
            for kind, p in self.faults:
                acc += p
                if r < acc:
                    self.injected += 1
                    break
            else:
                return None
        self.count(op, "faults")
        return kind


class Tokens:
    """Pagination tokens that expire: after --token-ttl-seconds, or the first N presented
    (--expire-tokens N)."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.handed_out = {}  # pagination token -> time.monotonic() when handed out
        self.expired = 0  # tokens refused so far by --expire-tokens

    def check(self, body):
        if self.args.expire_tokens and any(body.get(key) for key in TOKEN_KEYS):
            with self.lock:
                expire = self.expired < self.args.expire_tokens
                self.expired += expire
            if expire:
                raise invalid("Invalid pagination token: token has expired")
        ttl = self.args.token_ttl_seconds
        if ttl is not None:
            for key in TOKEN_KEYS:
                handed_out = self.handed_out.get(body.get(key))
                if handed_out is not None and time.monotonic() - handed_out > ttl:
                    raise invalid("Invalid pagination token: token has expired")

    def remember(self, answer):
        if self.args.token_ttl_seconds is not None and isinstance(answer, dict):
            now = time.monotonic()
            with self.lock:
                for key in TOKEN_KEYS:
                    if answer.get(key):
                        self.handed_out.setdefault(answer[key], now)


# ---------------------------------------------------------------------------------------
# HTTP plumbing

class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # accept bursts of new connections (the default backlog is 5)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like AWS endpoints
    server_version = "aws-layer"
    layer = None  # the core.Layer, set on the class by cli.main()

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK hold every keep-alive answer back by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.layer.args.verbose:
            sys.stderr.write("aws_layer: " + (fmt % args) + "\n")

    def send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        # end_headers(), with the body in the same write: one syscall, not two.
        self._headers_buffer += (b"\r\n", body)
        self.flush_headers()

    def send_json(self, obj):
        self.send(200, [("Content-Type", "application/json")], json.dumps(obj).encode())

    def send_error_json(self, err):
        body = json.dumps({"__type": err.error_type, "message": err.message}).encode()
        self.send(err.status, [("Content-Type", JSON_CONTENT_TYPE),
                               ("x-amzn-RequestId", str(uuid.uuid4())),
                               ("x-amzn-ErrorType", err.error_type)], body)

    def reset_connection(self):
        """Close the TCP connection with RST and no answer (SO_LINGER on, timeout 0)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket is only really closed once its file objects are
        self.connection.close()
        self.close_connection = True

    def do_GET(self):
        if self.path == "/_layer/stats":
            self.send_json(self.layer.stats_json())
        elif self.path.split("?")[0] == "/_layer/synthetic":
            self.send_json(self.layer.synthetic_json(members="members=1" in self.path))
        else:
            self.send(404, [("Content-Type", "text/plain")], b"not found\n")

    def do_POST(self):
        layer = self.layer
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_layer/reset-stats":
            layer.reset_stats()
            return self.send_json({"ok": True})
        if self.path == "/_layer/forget":  # pools were written behind the layer's back
            layer.note_write(None, None)
            return self.send_json({"ok": True})
        target = self.headers.get("X-Amz-Target", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else None
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in DROPPED_HEADERS}
        if op is None:  # not a Cognito call (e.g. /moto-api/reset): pass it through untouched
            layer.note_write(None, body)
            try:
                return self.send(*layer.forward(self.path, headers, raw))
            except AwsError as err:
                return self.send_error_json(err)

        layer.count(op, "calls")
        layer.record(op, body)
        latency_ms = layer.op_latency_ms.get(op, layer.args.latency_ms)
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if not isinstance(body, dict):
            body = {}
        try:
            layer.check_quota(op, body)
            layer.validate(op, body)
            fault = layer.pick_fault(op)
            if fault == "reset":
                return self.reset_connection()
            if fault == "throttle":
                raise AwsError(400, "TooManyRequestsException", "Rate exceeded (injected)")
            if fault in ("500", "fail"):
                raise AwsError(500, "InternalErrorException", "Internal error (injected)")
            layer.note_write(op, body)
            status, relayed, data = layer.serve(self.path, op, body, headers, raw)
            layer.note_write(op, body)
            if status == 200:
                layer.refresh_user(op, body, headers)
        except AwsError as err:
            return self.send_error_json(err)
        if fault == "reset_after":
            return self.reset_connection()
        if status == 200 and layer.args.token_ttl_seconds is not None:
            try:
                layer.remember_tokens(json.loads(data))
            except ValueError:
                pass
        self.send(status, relayed, data)

"""The command line: ``python tests/support/aws_layer.py --upstream URL [options]`` (or
``python -m layer`` from tests/support). Parses the options, builds the ``Layer`` and serves
on 127.0.0.1 until interrupted, after printing ``LISTENING 127.0.0.1:<port>``."""

import argparse

from . import __doc__ as PACKAGE_DOC
from .core import Layer
from .network import Handler, Server
from .quotas import GROUP_OPS_PER_POOL_RATE
from .synthetic import DEFAULT_GROUPS, MAX_GROUPS


def parser():
    p = argparse.ArgumentParser(prog="aws_layer.py", description=PACKAGE_DOC.split("\n\n")[0])
    p.add_argument("--upstream", help="moto server URL, e.g. http://127.0.0.1:5000 (required "
                                      "unless synthetic pools are given: without it, only they "
                                      "answer)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--record", metavar="FILE", help="append each request as a JSON line")
    p.add_argument("--latency-ms", type=float, default=0, help="delay before every answer")
    p.add_argument("--op-latency", metavar="OP=MS", action="append", default=[],
                   help="delay before every answer to OP instead (repeatable)")
    p.add_argument("--quotas", action="store_true", help="enforce Cognito's request-rate quotas")
    p.add_argument("--quota-scale", type=float, default=1.0, help="multiply every quota rate (and the per-pool group limits, and what "
                        "GetProvisionedLimit answers)")
    p.add_argument("--group-rate", type=float, default=GROUP_OPS_PER_POOL_RATE,
                   help="with --quotas: requests per second per pool for each of CreateGroup, "
                        "GetGroup, UpdateGroup, DeleteGroup, ListGroups (default: %(default)s; "
                        "multiplied by a --quota-scale above 1)")
    p.add_argument("--burst-seconds", type=float, default=1.0,
                   help="bucket capacity, in seconds of the rate")
    p.add_argument("--faults", metavar="SPEC",
                   help="kind:probability,... kinds: throttle, 500, reset, reset_after")
    p.add_argument("--fault-ops", metavar="OP,OP", help="ops the faults apply to (default: all)")
    p.add_argument("--fault-budget", type=int, help="inject at most this many faults")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault generator")
    p.add_argument("--fail-always", metavar="OP", action="append", default=[],
                   help="answer every request for OP with HTTP 500 (repeatable)")
    p.add_argument("--token-ttl-seconds", type=float,
                   help="reject pagination tokens handed out longer ago than this")
    p.add_argument("--expire-tokens", type=int, default=0, metavar="N",
                   help="refuse the first N requests that present a pagination token as expired")
    p.add_argument("--index-listings", action="store_true",
                   help="serve ListUsers from an in-memory index of each pool")
    p.add_argument("--no-provisioned-limits", action="store_true",
                   help="answer GetProvisionedLimit as an endpoint without it does "
                        "(HTTP 400 UnknownOperationException)")
    p.add_argument("--synthetic-pool", metavar="POOL_ID=COUNT[:SEED]", action="append",
                   default=[], help="a pool of COUNT generated users (e.g. 1000000 or 1M) that "
                                    "exists only in the layer (repeatable; see "
                                    "tests/support/layer/synthetic.py)")
    p.add_argument("--synthetic-empty", metavar="POOL_ID", action="append", default=[],
                   help="an empty synthetic pool, e.g. to restore into (repeatable)")
    p.add_argument("--synthetic-groups", type=int, default=DEFAULT_GROUPS, metavar="N",
                   help=f"groups of each synthetic pool (0 to {MAX_GROUPS}; default: "
                        "%(default)s)")
    p.add_argument("--synthetic-everyone", metavar="POOL_ID", action="append", default=[],
                   help="give that synthetic pool a group `everyone` holding every user")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if not args.upstream and not (args.synthetic_pool or args.synthetic_empty):
        p.error("the following arguments are required: --upstream")
    if not 0 <= args.synthetic_groups <= MAX_GROUPS:
        p.error(f"--synthetic-groups must be from 0 to {MAX_GROUPS}")
    try:
        layer = Layer(args)
    except ValueError as e:  # a bad --synthetic-... option
        p.error(str(e))
    Handler.layer = layer
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"LISTENING 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass

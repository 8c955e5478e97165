"""The layer as a whole: ``Layer`` holds its parts (the upstream moto, the stats, faults and
tokens of network.py, the quotas, the rules, the ListUsers indexes, the synthetic pools) and
decides what is done with a Cognito call once it passed the quota, validation and fault
checks: answered by the layer itself (GetProvisionedLimit, a synthetic pool, the ListUsers
index) or forwarded to moto with the pool's rules applied around it. network.Handler calls the methods here in the order AWS would
apply them."""

import contextlib
import json

from . import rules as rules_module
from .index import Indexes
from .network import Faults, Stats, Tokens, parse_op_latency
from .quotas import Quotas
from .protocol import json_answer
from .rules import Rules
from .synthetic import DEFAULT_GROUPS, SyntheticPools
from .upstream import Upstream


class Layer:
    def __init__(self, args):
        self.args = args
        self.op_latency_ms = parse_op_latency(getattr(args, "op_latency", []))
        self.upstream = Upstream(args.upstream)
        self.stats = Stats(args.record)
        self.quotas = Quotas(args, self.stats.count)
        self.faults = Faults(args, self.stats.count)
        self.tokens = Tokens(args)
        self.indexes = Indexes(self.upstream)
        self.rules = Rules(self.upstream)
        self.synthetic = SyntheticPools(getattr(args, "synthetic_pool", None) or [],
                                        getattr(args, "synthetic_empty", None) or [],
                                        getattr(args, "synthetic_groups", DEFAULT_GROUPS),
                                        getattr(args, "synthetic_everyone", None) or [])

    # -- bookkeeping --------------------------------------------------------------------
    def count(self, op, key):
        self.stats.count(op, key)

    def record(self, op, body):
        self.stats.record(op, body)

    def stats_json(self):
        triggers, messages = self.rules.snapshot()
        return self.stats.json(triggers, messages)

    def reset_stats(self):
        self.stats.reset()
        self.rules.reset_stats()

    # -- the checks, in the order AWS would apply them ----------------------------------
    def check_quota(self, op, body):
        self.quotas.check(op, body)

    def validate(self, op, body):
        rules_module.validate(op, body)
        self.tokens.check(body)

    def pick_fault(self, op):
        return self.faults.pick(op)

    def remember_tokens(self, answer):
        self.tokens.remember(answer)

    # -- what changes what the layer holds about pools ----------------------------------
    def forward(self, path, headers, body):
        return self.upstream.forward(path, headers, body)

    def is_synthetic(self, body):
        return isinstance(body, dict) and self.synthetic.get(body.get("UserPoolId")) is not None

    def note_write(self, op, body):
        """Before and after a write: the indexes it invalidates; a request that is not
        Cognito's (or POST /_layer/forget) drops everything held about every pool (but the
        synthetic pools, which are not moto's)."""
        if self.is_synthetic(body):
            return
        self.indexes.note_write(op, body)
        if op is None:
            self.rules.forget_all()

    def refresh_user(self, op, body, headers):
        if not self.is_synthetic(body):
            self.indexes.refresh_user(op, body, headers)

    def synthetic_json(self, members=False):
        """GET /_layer/synthetic: the synthetic pools (and their groups' member counts)."""
        return self.synthetic.info(members)

    # -- answering ------------------------------------------------------------------------
    def serve(self, path, op, body, headers, raw):
        """Answers one Cognito call that passed the quota, validation and fault checks."""
        if op == "GetProvisionedLimit":
            return self.quotas.provisioned_limit(body)
        pool = body.get("UserPoolId")
        synthetic = self.synthetic.get(pool)
        if synthetic is not None:
            return synthetic.serve(op, body, self.rules)
        if op == "ListUserPools" and self.synthetic:
            return self.list_user_pools(path, headers, raw)
        rules, indexes = self.rules, self.indexes
        if op == "CreateUserPool":
            status, relayed, data = self.forward(path, headers, raw)
            if status == 200:
                created = json.loads(data).get("UserPool", {}).get("Id")
                rules.remember_created(created, body)
            return status, relayed, data
        if op in ("UpdateUserPool", "DeleteUserPool") and isinstance(pool, str):
            rules.forget_pool(pool)
            answer = self.forward(path, headers, raw)
            rules.forget_pool(pool)
            return answer
        settings = None
        if isinstance(pool, str) and (op.startswith("Admin") or op == "ListUsers"):
            settings = rules.settings(pool, headers)
        if settings is None:  # not a user call, or no such pool: moto answers
            if op == "ListUsers" and self.args.index_listings:
                return indexes.serve_list_users(headers, body, False)
            return self.forward(path, headers, raw)
        # Writes whose checks read the pool are serialized per pool (uniqueness).
        checked = op == "AdminCreateUser" and (not settings.case_sensitive or
                                               settings.alias_attributes) or \
            op == "AdminUpdateUserAttributes" and settings.alias_attributes
        with rules.write_lock(pool) if checked else contextlib.nullcontext():
            plan = rules.plan(op, body, settings, headers)
            if plan.body is not body:
                raw = json.dumps(plan.body).encode()
            if op == "ListUsers" and (self.args.index_listings or plan.fold_listing):
                status, relayed, data = indexes.serve_list_users(
                    headers, body, not settings.case_sensitive,
                    cached=self.args.index_listings)
            else:
                status, relayed, data = self.forward(path, headers, raw)
            if status == 200:
                rules.apply(plan, pool, headers)
        return status, relayed, data

    def list_user_pools(self, path, headers, raw):
        """moto's pools, and the synthetic ones after them (on the last page)."""
        if self.upstream.host is None:
            return json_answer({"UserPools": self.synthetic.summaries()})
        status, relayed, data = self.forward(path, headers, raw)
        if status != 200:
            return status, relayed, data
        answer = json.loads(data)
        if not answer.get("NextToken"):
            answer["UserPools"] = answer.get("UserPools", []) + self.synthetic.summaries()
        return status, relayed, json.dumps(answer).encode()

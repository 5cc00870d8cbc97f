"""The decision pipeline: the stages, in order, and the phases that drive them.

Adapters drive an exchange through four calls, and do all the I/O between
them::

    ex = pipeline.begin(head)              # decode: request head
    if ex.reply is None:
        body = <read at most ex.body_limit bytes>   (or pipeline.body_too_large(ex))
        pipeline.request_body(ex, body)    # decode: request body
    if ex.reply is None:
        <send ex.forward_* upstream>       (or pipeline.upstream_failed(ex, problem))
        pipeline.upstream_response(ex, status, headers, body)
    reply = pipeline.finish(ex)            # encode: every reply

The stage list is data (:attr:`Pipeline.stages`), printed by
``apishield check`` and used by ``explain``; a stage's position is its
contract. Encode phases run the stages in reverse, as in Envoy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from apishield.audit.event import Redactor
from apishield.audit.instance import default_instance
from apishield.auth.security import SecurityPlan
from apishield.auth.state import AuthState, build_auth_state
from apishield.config.model import Config
from apishield.core.client_ip import TrustedProxies
from apishield.core.exchange import Exchange, Headers, Reply, RequestHead
from apishield.core.stage import Mode, Stage, problem_reply
from apishield.core.stages.audit import AuditQueue, AuditStage
from apishield.core.stages.authentication import AuthenticationStage
from apishield.core.stages.authorization import AuthorizationStage
from apishield.core.stages.client_certificate import ClientCertificateStage
from apishield.core.stages.cors import CorsPreflightStage, CorsStage
from apishield.core.stages.forward import ForwardStage
from apishield.core.stages.hygiene import HygieneStage
from apishield.core.stages.issued_tokens import IssuedTokensStage
from apishield.core.stages.object_access import ObjectAccessStage
from apishield.core.stages.property_access import PropertyAccessStage
from apishield.core.stages.rate_limit import EarlyRateLimitStage, RateLimitOutcomeStage, RateLimitStage
from apishield.core.stages.request_validation import RequestValidationStage
from apishield.core.stages.response_headers import ResponseHeadersStage
from apishield.core.stages.response_validation import ResponseMode, ResponseValidationStage
from apishield.core.stages.route import RouteStage
from apishield.core.stages.security_headers import SecurityHeadersStage
from apishield.core.stages.uniform_failure import UniformFailureRule, UniformFailureStage
from apishield.core.stages.upstream_errors import UpstreamErrorsStage
from apishield.openapi.compile import CompiledAPI
from apishield.problem import Problem
from apishield.rules import AuthorizationPlans

__all__ = ["Pipeline", "build_pipeline"]


class Pipeline:
    def __init__(self, stages: Sequence[Stage], body_stage: RequestValidationStage | None) -> None:
        self.stages = list(stages)
        self.audit = next((s for s in self.stages if isinstance(s, AuditStage)), None)
        self.recorder: AuditQueue = self.audit.queue if self.audit is not None else AuditQueue()
        self._reversed = list(reversed(self.stages))
        # when set (``audit.traces``), every stage call is also kept as (stage, start ns, end ns)
        self.tracing = False
        self._body_stage = body_stage

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def begin(self, head: RequestHead) -> Exchange:
        ex = Exchange(request=head, request_id=os.urandom(8).hex(), started_ns=time.perf_counter_ns())
        if self.tracing:
            ex.spans = []
        self.resume(ex)
        return ex

    def resume(self, ex: Exchange) -> None:
        """Run (or go on running) the current decode phase (request head, then body).

        Returns early with ``ex.pending`` set when a stage needs an effect; the
        adapter resolves it into ``ex.resolved`` and calls :meth:`resume` again,
        which re-runs that stage.
        """
        stages = self.stages
        ex.pending = None
        body = ex.phase == "body"
        timings = ex.stage_ns
        clock = time.perf_counter_ns
        then = clock()
        for index in range(ex.next_stage, len(stages)):
            stage = stages[index]
            if body:
                stage.on_request_body(ex, ex.request_body)
            else:
                stage.on_request_head(ex)
            now = clock()
            timings[stage.name] = timings.get(stage.name, 0) + now - then
            if ex.spans is not None:
                ex.spans.append((stage.name, then, now))
            then = now
            if ex.pending is not None:
                ex.next_stage = index
                return
            if ex.reply is not None:
                break
        ex.next_stage = len(stages)

    def request_body(self, ex: Exchange, body: bytes) -> None:
        ex.forward_body = body
        ex.request_body = body
        ex.phase = "body"
        ex.next_stage = 0
        self.resume(ex)

    def body_too_large(self, ex: Exchange) -> None:
        if self._body_stage is not None:
            self._body_stage.body_too_large(ex)

    def upstream_response(self, ex: Exchange, status: int, headers: Headers, body: bytes) -> None:
        ex.upstream_status = status
        ex.reply = Reply(status=status, headers=headers, body=body, from_upstream=True)
        timings = ex.stage_ns
        clock = time.perf_counter_ns
        then = clock()
        for stage in self._reversed:
            stage.on_upstream_response(ex)
            now = clock()
            timings[stage.name] = timings.get(stage.name, 0) + now - then
            if ex.spans is not None:
                ex.spans.append((stage.name, then, now))
            then = now

    def upstream_failed(self, ex: Exchange, problem: Problem) -> None:
        ex.decide("forward", "error", problem.detail or problem.title)
        ex.reply = problem_reply(problem, ex.request_id)

    def finish(self, ex: Exchange) -> Reply:
        timings = ex.stage_ns
        clock = time.perf_counter_ns
        then = clock()
        for stage in self._reversed:
            if stage is self.audit:  # last: it records the others' time
                stage.on_reply(ex)
                break
            stage.on_reply(ex)
            now = clock()
            timings[stage.name] = timings.get(stage.name, 0) + now - then
            if ex.spans is not None:
                ex.spans.append((stage.name, then, now))
            then = now
        assert ex.reply is not None
        return ex.reply


def build_pipeline(
    config: Config,
    api: CompiledAPI,
    auth: AuthState | None = None,
    plans: dict[str, SecurityPlan] | None = None,
    authz: AuthorizationPlans | None = None,
    instance: str | None = None,
) -> Pipeline:
    """Assemble the stages for a policy. Without ``auth``/``plans`` every operation is public."""
    req_modes: dict[str, Mode] = {}
    resp_modes: dict[str, ResponseMode] = {}
    rules: dict[str, UniformFailureRule] = {}
    for op_id, policy in config.operations.items():
        if policy.validation.requests is not None:
            req_modes[op_id] = policy.validation.requests
        if policy.validation.responses is not None:
            resp_modes[op_id] = policy.validation.responses
        uf = policy.uniform_failure
        if uf is not None:
            rules[op_id] = UniformFailureRule(
                status=uf.status,
                title=uf.title,
                detail=uf.detail,
                statuses=frozenset(s.upper() for s in uf.when_status),
                body_pointer=uf.when_body_pointer,
            )
    validation = RequestValidationStage(
        mode=config.validation.requests,
        op_modes=req_modes,
        reject_unknown_query=config.validation.unknown_query_params == "reject",
        max_body_bytes=config.limits.max_body_bytes,
        max_json_depth=config.limits.max_json_depth,
    )
    if auth is None:
        auth = build_auth_state(config.auth, Path("."))
    if authz is None:
        authz = AuthorizationPlans()
    if plans is None:
        plans = {op_id: SecurityPlan("public", reason="no auth configured") for op_id in api.operations}
    trusted = TrustedProxies(config.trusted_proxies.networks, config.trusted_proxies.header)
    early: list[Stage] = []
    late: list[Stage] = []
    last: list[Stage] = []
    if config.rate_limits is not None:
        from apishield.ratelimit.plan import compile_rate_limits

        limits = compile_rate_limits(config, list(api.operations), trusted)
        early.append(EarlyRateLimitStage(limits))
        if limits.has_late:
            late.append(RateLimitStage(limits))
        if any(limit.count_if is not None for limit in limits.limits):
            last.append(RateLimitOutcomeStage(limits))
    limits_ = config.limits
    hygiene = HygieneStage(
        max_url_length=limits_.max_url_length,
        max_header_count=limits_.max_header_count,
        max_header_bytes=limits_.max_header_bytes,
        method_override_headers=frozenset(config.proxy.method_override_headers),
    )
    # encode runs in reverse: CORS headers, then security headers, then the framing of response_headers
    edge: list[Stage] = [SecurityHeadersStage(config.headers)]
    preflight: list[Stage] = []
    if config.cors is not None:
        edge.append(CorsStage(config.cors))
        preflight.append(CorsPreflightStage(config.cors, api.router))
    audit = config.audit
    audit_stage = AuditStage(
        # the newest 64 events stay readable (tests, debugging); more would keep cold events alive
        AuditQueue(max_pending=audit.queue_size, keep_recent=64),
        instance=instance or default_instance(),
        redactor=Redactor(audit.redact) if audit.redact else None,
        # without a sink the events still feed the admin metrics and the detectors
        enabled=audit.sink != "off" or config.admin is not None or config.detection is not None,
    )
    # detection responses: blocks and throttles, enforced from a local mirror of the shared block store
    ip_blocks: list[Stage] = []
    principal_blocks: list[Stage] = []
    if config.detection is not None:  # blocks set by hand are enforced even with the detectors off
        from apishield.core.stages.blocklist import IPBlockStage, PrincipalBlockStage
        from apishield.detect.blocks import BlockList

        blocklist = BlockList()
        ip_blocks.append(IPBlockStage(blocklist, trusted))
        principal_blocks.append(PrincipalBlockStage(blocklist))
    stages: list[Stage] = [
        audit_stage,
        ResponseHeadersStage(),
        *edge,
        UniformFailureStage(rules),
        hygiene,
        *ip_blocks,
        *preflight,
        RouteStage(api.router),
        *early,
        ClientCertificateStage(
            auth.client_certificates,
            trusted,
            config.auth.client_certificates.header if config.auth.client_certificates else "Client-Cert",
            config.auth.realm,
        ),
        AuthenticationStage(auth),
        *principal_blocks,
        AuthorizationStage(plans, config.auth.realm, authz.operations),
        *late,
        validation,
        ResponseValidationStage(config.validation.responses, resp_modes, config.limits.max_json_depth),
        UpstreamErrorsStage(config.proxy.replace_upstream_errors),
        PropertyAccessStage(authz.guards),
        ObjectAccessStage(authz.operations, config.auth.realm, config.authorization.service_subject),
        IssuedTokensStage(config.auth.issued_tokens, auth),
        ForwardStage(config.proxy.preserve_host, config.auth.identity_headers, trusted),
        *last,
    ]
    return Pipeline(stages, validation)

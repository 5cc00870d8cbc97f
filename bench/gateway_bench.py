#!/usr/bin/env python3
"""Gateway benchmark: the upstream direct, nginx, and apishield with and without validation.

One run measures, side by side, on 127.0.0.1:

* ``direct``      the upstream alone (uvicorn, 1 worker);
* ``nginx``       nginx as a bare reverse proxy (1 worker, keep-alive pool to the upstream);
* ``passthrough`` ``apishield serve``, 1 worker, ``validation: {requests: off, responses: off}``;
* ``validation``  ``apishield serve``, 1 worker, ``validation: {requests: enforce, responses: strip}``;
* ``validation_2w`` (``--two-workers``) the same with 2 workers.

The load is ``wrk -t1 -c64 --latency -s bench/put.lua``: ``PUT /v1/customers/1`` with
``examples/customer_api/sample_customer.json`` as ``application/json``. Rounds are interleaved
(every target once per round, the order rotated each round) so that a noisy neighbour on a
shared machine hurts all targets alike; each target gets one warm-up run first.

Per target: requests/s (median of the rounds, min-max), p50/p99 latency (median of the
rounds), and server CPU time per request from ``/proc/<pid>/stat`` (utime + stime of the
server's process tree, before and after each run), plus the upstream's CPU per request.
The ratios validation / pass-through and pass-through / nginx are printed against their
targets (0.85 and 0.4).

Every process is started here, in its own process group, and stopped here (SIGTERM, then
SIGKILL), on errors and Ctrl-C too. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLE = ROOT / "examples" / "customer_api"
OPENAPI = EXAMPLE / "openapi.yaml"
SAMPLE = EXAMPLE / "sample_customer.json"
PUT_LUA = BENCH / "put.lua"
STATIC_UPSTREAM = BENCH / "upstream.py"
TARGET_PATH = "/v1/customers/1"
OPERATION_ID = "updateCustomer"  # PUT /v1/customers/{customerId}
HOST = "127.0.0.1"

TARGET_VALIDATION_OVER_PASSTHROUGH = 0.85
TARGET_PASSTHROUGH_OVER_NGINX = 0.4

CLK_TCK = os.sysconf("SC_CLK_TCK")
INSTALL_HINT = "apt-get install nginx-light wrk"

# CPU sets for --pin: the measured proxy on one core, the load generator and the upstream on the other.
PROXY_CPUS = "1"
LOAD_CPUS = "0"


class BenchError(Exception):
    """A setup or measurement failure, reported without a traceback."""


# -- processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Processes:
    """Every child process of the run; :meth:`stop_all` ends them (process groups)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, name: str, cmd: list[str], log: Path | None, cpus: str | None, cwd: Path = ROOT) -> Proc:
        if cpus is not None:
            cmd = ["taskset", "-c", cpus, *cmd]
        out: IO[bytes] | int = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            popen = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped as a whole, spared by Ctrl-C
            )
        finally:
            if not isinstance(out, int):
                out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: Proc, grace: float = 10.0) -> None:
        popen = proc.popen
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=grace)
        # The leader may be gone while others of its group remain (uvicorn workers, nginx worker).
        # A process group id is not reused while any member lives, so this hits only our group.
        if group_members(popen.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(proc: Proc, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise BenchError(
                f"{proc.name} exited with code {proc.popen.returncode} before listening on {port}:\n"
                + proc.log_tail()
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(
        f"{proc.name} did not listen on {HOST}:{port} within {timeout:.0f} s:\n" + proc.log_tail()
    )


# -- CPU accounting -------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    return text[text.rindex(")") + 2 :].split()


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and all its descendants, in seconds."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:  # fields[11], [12] are utime, stime (stat fields 14, 15)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def system_cpu() -> list[int]:
    """The aggregate ``cpu`` line of /proc/stat (user nice system idle iowait irq softirq steal ...)."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


# -- targets ---------------------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    label: str
    port: int
    proc: Proc
    strips: bool  # the answer lacks the undocumented members
    validates: bool  # an invalid request body is refused with 400
    runs: list[dict[str, Any]] = field(default_factory=list)
    token: str | None = None  # sent as a bearer token (--security targets)


def nginx_conf(tmp: Path, port: int, upstream_port: int) -> str:
    return f"""# generated by bench/gateway_bench.py
worker_processes 1;
master_process on;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
worker_rlimit_nofile 8192;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-client-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;

    upstream backend {{
        server {HOST}:{upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}

    server {{
        listen {HOST}:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def policy_has_auth() -> bool:
    """Whether this apishield's policy has an ``auth:`` section (unknown keys are errors)."""
    from apishield.config.model import Config

    return "auth" in Config.model_fields


def policy(
    port: int, upstream_port: int, requests: str, responses: str, audit: dict[str, Any] | None = None
) -> str:
    """A policy like examples/customer_api/apishield.yaml; JSON is valid YAML and quotes ``"off"``.

    The limits are the example policy's. ``openapi`` is absolute: the policy lives in a temp dir.
    """
    data = {
        "version": 1,
        "openapi": str(OPENAPI),
        "upstream": f"http://{HOST}:{upstream_port}",
        "listen": {"host": HOST, "port": port},
        "validation": {"requests": requests, "responses": responses, "unknown_query_params": "reject"},
        "limits": {"max_body_bytes": 65536, "max_json_depth": 32, "max_string_length": 4096},
    }
    if audit is not None:
        data["audit"] = audit
    if policy_has_auth():
        # The document requires an OAuth 2.0 token (customers:write) for the operation. The
        # benchmark measures proxying and validation, not token checks: make it public.
        data["auth"] = {"public_operations": [OPERATION_ID]}
    return "# generated by bench/gateway_bench.py\n" + json.dumps(data, indent=2) + "\n"


def security_setup(tmp: Path) -> tuple[Path, str]:
    """An ES256 key pair: the public JWKS file for the gateway, and a long-lived token signed with it."""
    import uuid

    from joserfc import jwk, jwt

    key = jwk.ECKey.generate_key("P-256", parameters={"kid": "bench-1", "alg": "ES256", "use": "sig"})
    jwks = tmp / "bench-jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    now = int(time.time())
    claims = {
        "iss": "https://issuer.bench",
        "aud": "customer-api",
        "sub": "alice",
        "client_id": "bench",
        "scope": "customers:read customers:write",
        "customer_id": 1,
        "roles": ["customer"],
        "iat": now,
        "exp": now + 6 * 3600,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "bench-1"}, claims, key)
    return jwks, token


def security_policy(text: str, jwks: Path, with_rules: bool) -> str:
    """The validation policy with the operation no longer public: a token is required and checked."""
    body = text.split("\n", 1)[1]
    data = json.loads(body)
    data["auth"] = {
        "jwt": [
            {
                "issuer": "https://issuer.bench",
                "audience": "customer-api",
                "jwks_file": str(jwks),
                "algorithms": ["ES256"],
                "max_lifetime": "7h",
            }
        ]
    }
    if with_rules:
        data["authorization"] = {
            "operations": {
                OPERATION_ID: {
                    "allow_if": "path.customerId == token.customer_id || 'support' in token.roles",
                }
            },
            "properties": {
                "Customer": {
                    "email": {"read": ["pii:read"], "read_if": "item.id == token.customer_id"},
                    "tier": {"write": ["support", "customers:write"]},
                }
            },
        }
    return "# generated by bench/gateway_bench.py\n" + json.dumps(data, indent=2) + "\n"


def put(port: int, body: bytes, token: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("PUT", TARGET_PATH, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_target(target: Target, body: bytes) -> None:
    """Refuse to measure a target that does not answer the benchmark request correctly."""
    status, answer = put(target.port, body, target.token)
    if status != 200:
        raise BenchError(
            f"{target.label}: PUT {TARGET_PATH} answered {status}, expected 200:\n"
            + answer[:500].decode(errors="replace")
            + "\n"
            + target.proc.log_tail()
        )
    try:
        data = json.loads(answer)
    except ValueError:
        raise BenchError(f"{target.label}: the answer is not JSON") from None
    leaked = {"riskScore", "passwordHash", "internalNotes"} & set(data)
    if target.strips and leaked:
        raise BenchError(f"{target.label}: undocumented members were not stripped: {sorted(leaked)}")
    if not target.strips and not leaked:
        raise BenchError(f"{target.label}: expected the upstream's undocumented members, got none")
    if target.validates:
        bad = json.dumps({**json.loads(body), "name": 5}).encode()
        status, _ = put(target.port, bad, target.token)
        if status != 400:
            raise BenchError(f"{target.label}: an invalid body answered {status}, expected 400")


# -- load ------------------------------------------------------------------------------------------


def run_wrk(
    procs: Processes,
    target: Target,
    upstream: Proc,
    duration: int,
    threads: int,
    connections: int,
    cpus: str | None,
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(PUT_LUA),
        f"http://{HOST}:{target.port}{TARGET_PATH}",
        "--",
        str(SAMPLE),
        *([target.token] if target.token else []),
    ]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    server_before = tree_cpu_seconds(target.proc.pid)
    upstream_before = tree_cpu_seconds(upstream.pid)
    sys_before = system_cpu()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    popen = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wrk = Proc("wrk", popen, None)
    procs.procs.append(wrk)
    try:
        out, _ = popen.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + 30} s") from None
    finally:
        procs.stop(wrk)
        procs.procs.remove(wrk)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys_after = system_cpu()
    server_cpu = tree_cpu_seconds(target.proc.pid) - server_before
    upstream_cpu = tree_cpu_seconds(upstream.pid) - upstream_before
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("WRK_JSON ")), None)
    if popen.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {popen.returncode}):\n{text}")
    result: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
    deltas = [a - b for a, b in zip(sys_after, sys_before, strict=False)]
    total = sum(deltas[:8]) or 1
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["server_cpu_s"] = server_cpu
    result["upstream_cpu_s"] = upstream_cpu
    result["wrk_cpu_s"] = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    ncpu = os.cpu_count() or 1
    busy_s = (total - deltas[3] - deltas[4]) / CLK_TCK
    ours_s = server_cpu + result["wrk_cpu_s"] + (upstream_cpu if upstream.pid != target.proc.pid else 0.0)
    seconds = result["duration_us"] / 1e6
    result["machine_busy_pct"] = 100.0 * (total - deltas[3] - deltas[4]) / total
    result["steal_pct"] = 100.0 * deltas[7] / total if len(deltas) > 7 else 0.0
    # CPU used by anything else (other tenants, kernel softirq), in cores: the noise indicator
    result["other_cpu_cores"] = max(0.0, busy_s - ours_s) / seconds if seconds else 0.0
    result["machine_cpus"] = ncpu
    return result


# -- report ----------------------------------------------------------------------------------------


def summarize(target: Target) -> dict[str, Any]:
    runs = target.runs
    rps = [r["rps"] for r in runs]
    requests = sum(r["requests"] for r in runs) or 1
    errors = sum(sum(r["errors"].values()) for r in runs)
    return {
        "label": target.label,
        "rounds": len(runs),
        "rps_median": statistics.median(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50_ms": statistics.median(r["latency_us"]["p50"] for r in runs) / 1000,
        "p99_ms": statistics.median(r["latency_us"]["p99"] for r in runs) / 1000,
        "server_cpu_us_per_req": 1e6 * sum(r["server_cpu_s"] for r in runs) / requests,
        "upstream_cpu_us_per_req": 1e6 * sum(r["upstream_cpu_s"] for r in runs) / requests,
        "wrk_cpu_us_per_req": 1e6 * sum(r["wrk_cpu_s"] for r in runs) / requests,
        "errors": errors,
        "steal_pct_max": max(r["steal_pct"] for r in runs),
        "other_cpu_cores_max": max(r["other_cpu_cores"] for r in runs),
    }


def ratio(targets: dict[str, Target], top: str, bottom: str, goal: float) -> dict[str, Any] | None:
    if top not in targets or bottom not in targets:
        return None
    a, b = targets[top].runs, targets[bottom].runs
    per_round = [x["rps"] / y["rps"] for x, y in zip(a, b, strict=True)]
    of_medians = statistics.median(x["rps"] for x in a) / statistics.median(y["rps"] for y in b)

    def cpu_per_request(runs: list[dict[str, Any]]) -> float:
        return sum(r["server_cpu_s"] for r in runs) / max(1, sum(r["requests"] for r in runs))

    return {
        # the throughput ratio if both were bound by the CPU of their one process
        "cpu_equivalent": cpu_per_request(b) / cpu_per_request(a),
        "of_medians": of_medians,
        "per_round_median": statistics.median(per_round),
        "per_round_min": min(per_round),
        "per_round_max": max(per_round),
        "target": goal,
        "met": of_medians >= goal,
    }


def markdown(
    summaries: dict[str, dict[str, Any]], ratios: dict[str, dict[str, Any] | None], meta: dict[str, Any]
) -> str:
    lines = [
        f"Mode: **{meta['mode']}**; {meta['rounds']} round(s) x {meta['duration_s']} s, "
        f"warm-up {meta['warmup_s']} s, wrk -t{meta['threads']} -c{meta['connections']}, "
        f"upstream: {meta['upstream']}; {meta['machine']['cpus']} vCPU {meta['machine']['model']}; "
        f"apishield sources {meta['apishield_source_digest']}",
        "",
        "| config | req/s (median) | req/s min–max | p50 ms | p99 ms "
        "| server CPU µs/req | upstream CPU µs/req | other load (cores, max) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries.values():
        lines.append(
            f"| {s['label']} | {s['rps_median']:,.0f} | {s['rps_min']:,.0f}–{s['rps_max']:,.0f} "
            f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['server_cpu_us_per_req']:.0f} "
            f"| {s['upstream_cpu_us_per_req']:.0f} | {s['other_cpu_cores_max']:.2f} | {s['errors']} |"
        )
    lines += [
        "",
        "| ratio (req/s) | of medians | per round: median (min–max) | CPU-equivalent | target | |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    names = {
        "validation_over_passthrough": "validation ÷ pass-through",
        "passthrough_over_nginx": "pass-through ÷ nginx",
        "jwt_over_validation": "cached JWT ÷ no auth (both validating)",
        "rules_over_jwt": "rules on ÷ rules off (both with JWT)",
        "sqlite_over_audit_off": "audit to SQLite ÷ audit off (both validating)",
        "jsonl_over_audit_off": "audit to JSON lines ÷ audit off",
        "postgresql_over_audit_off": "audit to PostgreSQL ÷ audit off",
    }
    for key, r in ratios.items():
        if r is None:
            continue
        lines.append(
            f"| {names[key]} | {r['of_medians']:.2f} | {r['per_round_median']:.2f} "
            f"({r['per_round_min']:.2f}–{r['per_round_max']:.2f}) | {r['cpu_equivalent']:.2f} "
            f"| ≥ {r['target']:.2f} "
            f"| {'met' if r['met'] else '**missed**'} |"
        )
    return "\n".join(lines)


def source_digest() -> str:
    """A short digest of the apishield sources measured (ties results to a tree without git)."""
    import apishield

    root = Path(apishield.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def machine_info() -> dict[str, Any]:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
        except OSError:
            return "?"
        return (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()[0]

    return {
        "cpus": os.cpu_count(),
        "model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


# -- main ------------------------------------------------------------------------------------------


def find_tools(pin: bool) -> None:
    os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    missing = [t for t in ("nginx", "wrk") if shutil.which(t) is None]
    if missing:
        raise BenchError(f"{' and '.join(missing)} not found; install with: {INSTALL_HINT}")
    if pin and shutil.which("taskset") is None:
        raise BenchError("--pin needs taskset (util-linux)")
    if pin and len(os.sched_getaffinity(0)) < 2:
        raise BenchError("--pin needs at least 2 CPUs")
    try:
        import apishield  # noqa: F401
    except ImportError:
        raise BenchError("apishield is not importable: run `make bench` (or pip install -e .)") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per target (default 3)")
    p.add_argument("--duration", type=int, default=8, help="seconds per measured run (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per target (default 2; 0: none)")
    p.add_argument("--quick", action="store_true", help="1 round x 3 s (overrides --rounds/--duration)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument(
        "--pin",
        action="store_true",
        help=f"taskset: proxies on CPU {PROXY_CPUS}, wrk and upstream on CPU {LOAD_CPUS}",
    )
    p.add_argument("--two-workers", action="store_true", help="add apishield validation with 2 workers")
    p.add_argument(
        "--audit",
        action="store_true",
        help="add validation with the audit trail off, to JSON lines, and to PostgreSQL "
        "(the validation target writes to the default SQLite sink)",
    )
    p.add_argument(
        "--security",
        action="store_true",
        help="add validation + cached ES256 JWT, and validation + JWT + authorization rules",
    )
    p.add_argument(
        "--upstream",
        choices=("static", "example"),
        default="static",
        help="static: bench/upstream.py (default); example: examples/customer_api/app.py on SQLite",
    )
    p.add_argument("--json", metavar="FILE", help="write raw and summary results as JSON to FILE")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 3
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0:
        p.error("--rounds and --duration must be >= 1, --warmup >= 0")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP stop the run like Ctrl-C does, through the same cleanup."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def bench(args: argparse.Namespace, procs: Processes, tmp: Path) -> dict[str, Any]:
    pin = args.pin
    proxy_cpus = PROXY_CPUS if pin else None
    load_cpus = LOAD_CPUS if pin else None
    body = SAMPLE.read_bytes()
    meta: dict[str, Any] = {
        "mode": f"pinned (proxies on CPU {PROXY_CPUS}; wrk and upstream on CPU {LOAD_CPUS})"
        if pin
        else "unpinned",
        "pinned": pin,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "threads": args.threads,
        "connections": args.connections,
        "upstream": "static (bench/upstream.py)" if args.upstream == "static" else "example app (SQLite)",
        "machine": machine_info(),
        "apishield_source_digest": source_digest(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

    # upstream
    up_port = free_port()
    if args.upstream == "static":
        up_cmd = [sys.executable, str(STATIC_UPSTREAM), "--host", HOST, "--port", str(up_port)]
    else:
        up_cmd = [
            sys.executable,
            str(EXAMPLE / "app.py"),
            "--host",
            HOST,
            "--port",
            str(up_port),
            "--db",
            str(tmp / "customer-api.db"),
            "--log-level",
            "warning",
        ]
    upstream = procs.start("upstream", up_cmd, tmp / "upstream.log", load_cpus)
    wait_for_port(upstream, up_port)

    targets: dict[str, Target] = {}
    targets["direct"] = Target("direct", "upstream direct", up_port, upstream, strips=False, validates=False)

    # nginx
    ng_port = free_port()
    (tmp / "nginx.conf").write_text(nginx_conf(tmp, ng_port, up_port))
    nginx_cmd = ["nginx", "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(tmp / "nginx.conf")]
    nginx = procs.start("nginx", nginx_cmd, tmp / "nginx.log", proxy_cpus)
    wait_for_port(nginx, ng_port)
    targets["nginx"] = Target("nginx", "nginx (1 worker)", ng_port, nginx, strips=False, validates=False)

    # apishield
    gateways = [
        ("passthrough", "apishield pass-through (1 worker)", "off", "off", 1, proxy_cpus),
        ("validation", "apishield validation (1 worker)", "enforce", "strip", 1, proxy_cpus),
    ]
    if args.two_workers:
        label = "apishield validation (2 workers, unpinned)"
        gateways.append(("validation_2w", label, "enforce", "strip", 2, None))
    security = security_setup(tmp) if args.security else None
    if security is not None:
        gateways.append(
            ("jwt", "apishield validation + cached JWT (1 worker)", "enforce", "strip", 1, proxy_cpus)
        )
        gateways.append(
            ("rules", "apishield validation + JWT + rules (1 worker)", "enforce", "strip", 1, proxy_cpus)
        )
    audits: dict[str, dict[str, Any]] = {"validation": {"path": str(tmp / "audit.db")}}
    if args.audit:
        audits["audit_off"] = {"sink": "off"}
        audits["audit_jsonl"] = {"sink": "jsonl", "path": str(tmp / "audit.jsonl")}
        audits["audit_postgresql"] = {
            "sink": "postgresql",
            "dsn": os.environ.get("APISHIELD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
            + "?schema=bench_audit",
        }
        for key, what in (
            ("audit_off", "off"),
            ("audit_jsonl", "JSON lines"),
            ("audit_postgresql", "PostgreSQL"),
        ):
            gateways.append(
                (key, f"apishield validation, audit {what} (1 worker)", "enforce", "strip", 1, proxy_cpus)
            )
    for key, label, req_mode, resp_mode, workers, cpus in gateways:
        port = free_port()
        config = tmp / f"policy-{key}.yaml"
        text = policy(port, up_port, req_mode, resp_mode, audits.get(key))
        if key in ("jwt", "rules") and security is not None:
            text = security_policy(text, security[0], with_rules=key == "rules")
        config.write_text(text)
        cmd = [
            sys.executable,
            "-m",
            "apishield",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        proc = procs.start(key, cmd, tmp / f"{key}.log", cpus)
        wait_for_port(proc, port)
        strips = resp_mode != "off"
        targets[key] = Target(key, label, port, proc, strips=strips, validates=req_mode == "enforce")
        if key in ("jwt", "rules") and security is not None:
            targets[key].token = security[1]

    for target in targets.values():
        check_target(target, body)
    log(f"all {len(targets)} targets answer PUT {TARGET_PATH} with 200; {meta['mode']}")

    def one(target: Target, seconds: int) -> dict[str, Any]:
        return run_wrk(procs, target, upstream, seconds, args.threads, args.connections, load_cpus)

    if args.warmup:
        for target in targets.values():
            log(f"warm-up {target.label}: {args.warmup} s")
            one(target, args.warmup)
    keys = list(targets)
    for rnd in range(args.rounds):
        shift = rnd % len(keys)
        for key in keys[shift:] + keys[:shift]:
            target = targets[key]
            result = one(target, args.duration)
            result["round"] = rnd + 1
            target.runs.append(result)
            log(
                f"round {rnd + 1}/{args.rounds} {target.label:45s} {result['rps']:9,.0f} req/s  "
                f"p99 {result['latency_us']['p99'] / 1000:6.2f} ms  "
                f"server {1e6 * result['server_cpu_s'] / max(result['requests'], 1):5.0f} µs/req  "
                f"other load {result['other_cpu_cores']:4.2f} cores"
            )
            bad = sum(result["errors"].values())
            if bad:
                log(f"  WARNING: {bad} errors/non-2xx answers in this run: {result['errors']}")

    summaries = {key: summarize(t) for key, t in targets.items()}
    for key, t in targets.items():
        if t.proc.log is not None and t.proc.log.exists() and key not in ("direct", "nginx"):
            # apishield writes one decision-log line per modified (stripped) answer
            with t.proc.log.open("rb") as f:
                summaries[key]["log_lines"] = sum(1 for _ in f)
    ratios = {
        "validation_over_passthrough": ratio(
            targets, "validation", "passthrough", TARGET_VALIDATION_OVER_PASSTHROUGH
        ),
        "passthrough_over_nginx": ratio(targets, "passthrough", "nginx", TARGET_PASSTHROUGH_OVER_NGINX),
        "jwt_over_validation": ratio(targets, "jwt", "validation", 0.9),
        "rules_over_jwt": ratio(targets, "rules", "jwt", 0.9),
        "sqlite_over_audit_off": ratio(targets, "validation", "audit_off", 0.9),
        "jsonl_over_audit_off": ratio(targets, "audit_jsonl", "audit_off", 0.9),
        "postgresql_over_audit_off": ratio(targets, "audit_postgresql", "audit_off", 0.9),
    }
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "meta": meta,
        "summary": summaries,
        "ratios": ratios,
        "runs": {key: t.runs for key, t in targets.items()},
    }


def stop_all_uninterrupted(procs: Processes) -> None:
    """Stop every process started; a second Ctrl-C must not cut the cleanup short."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        procs.stop_all()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        find_tools(args.pin)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="apishield-bench-"))
    tmp.chmod(0o755)  # nginx workers may run as another user
    try:
        with signals_as_interrupt():
            results = bench(args, procs, tmp)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop_all_uninterrupted(procs)
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    table = markdown(results["summary"], results["ratios"], results["meta"])
    print("\n" + table, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Credential stuffing and brute force: failed authentications per address, per account and in total.

**What it watches.** The issuer's Authentication events (OCSF 3002): failed
sign-ins at the authorization endpoint (``login_failed``, ``throttled``, with
the username tried) and refused grants at the token endpoint
(``invalid_grant``, ``invalid_client``...); and the gateway's 401 answers
(a bad, expired or missing token; the example service's own ``login``
operation, whose failures the policy makes uniform 401s). A reused refresh
token is the token-sharing detector's.

**Three signals**, each in a sliding window (``window``, 10 minutes):

* *per address* (``ip:<address>``): ``ip_failures`` failed authentications,
  or failed sign-ins for ``ip_accounts`` distinct accounts. Many accounts from
  one address is the signature of stuffing from a combo list; many failures
  of one account from one address is brute force. When an account then
  signs in successfully from that address, the evidence says so and the
  severity rises to 5: a likely account takeover.
* *per account* (``account:<username>``): ``account_failures`` failed
  sign-ins of one account from at least ``account_addresses`` addresses:
  brute force spread over proxies. From one address, the owner who forgot
  the password tries a few times, meets the issuer's throttle and retries
  (each throttled attempt is a failure too); that takes ``ip_failures``
  failures, the address rule's bar.
* *population* (``service:<audience>``): modern stuffing is low and slow,
  one or two attempts per residential address, so per-address thresholds
  never fire (ecosystem research §2.5). Population-level correlation does:
  the number of distinct accounts with a failed sign-in per bucket
  (``population_bucket``, 5 minutes) is compared with an EWMA of the earlier
  buckets, empty ones included. It fires at ``max(population_min,
  mean + population_sigmas * sd, population_factor * mean)``, where the
  standard deviation is at least Poisson's, only after ``warmup`` buckets.
  Such a signal names no principal, so it never carries a block or
  throttle; its evidence lists the addresses and accounts of the bucket.
  Spread over at least ``population_min`` addresses, the campaign is out of
  reach of the address rule and the severity is one level higher. One
  service key stands for every campaign, so a bucket below the bar ends an
  episode: the next campaign is signalled at once, not after
  ``resignal_after``.

**Why these defaults.** A user who mistypes a password fails two or three
times and then signs in; one who forgot it tries a few more, meets the
issuer's throttle (5 failures per account, 20 per address per 15 minutes)
and retries into it; mobile carriers put many users behind one address
(carrier-grade NAT), so an address sees a handful of unrelated typos and
expired tokens an hour. Twenty failures or six accounts from one address
in ten minutes is far beyond that; the throttle refuses an attacker before
the password is checked, but the attempts still arrive and are counted
here. Eight failures of one account from two or more addresses is beyond a
forgetful owner and reached within a minute by guessing through rotating
proxies at one attempt every few seconds. At the population level the
reference traffic has at most a couple of distinct failing accounts per
five minutes at its daily peak: for a Poisson count of mean one, fifteen has
a probability below 10^-12 per bucket. A botnet trying one account every
two seconds crosses it in half a minute. Buckets that crossed the bar are
kept out of the baseline, so a long campaign does not raise it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from apishield.config.detectors import CredentialStuffingPolicy
from apishield.detect.baseline import Ewma, KeyedStates
from apishield.detect.detector import Detector, new_ids, sample
from apishield.detect.facts import AUTH, Facts
from apishield.detect.signal import Signal

__all__ = ["CredentialStuffingDetector"]

_MAX_ACCOUNTS = 256
_MAX_POPULATION = 4096
_REUSE = frozenset({"refresh_token_reuse", "authorization_code_reuse"})


class _Window:
    __slots__ = ("accounts", "failures", "ids", "prev_accounts", "prev_failures", "seen", "start", "taken")

    def __init__(self, time: int) -> None:
        self.seen = time
        self.start = time
        self.failures = 0
        self.accounts: dict[str, None] = {}
        self.prev_failures = 0
        self.prev_accounts = 0
        self.taken: dict[str, None] = {}  # accounts signed in after failures (address windows)
        self.ids: deque[str] = new_ids()


class CredentialStuffingDetector(Detector):
    name = "credential_stuffing"

    def __init__(self, policy: CredentialStuffingPolicy, max_keys: int, idle_ms: int) -> None:
        super().__init__(policy, max_keys, idle_ms)
        self.p = policy
        self.window = int(policy.window * 1000)
        self.ips: KeyedStates[str, _Window] = KeyedStates(max_keys, idle_ms)
        self.accounts: KeyedStates[str, _Window] = KeyedStates(max_keys, idle_ms)
        # population: distinct failing accounts per bucket
        self.bucket = int(policy.population_bucket * 1000)
        self.pop_start = -1
        self.pop_accounts: dict[str, None] = {}
        self.pop_ips: dict[str, int] = {}
        self.pop_prev = 0
        self.pop_ids: deque[str] = new_ids()
        self.baseline = Ewma(policy.population_alpha)
        self.pop_bar = float(policy.population_min)
        self.pop_flagged = False  # the bucket crossed the bar: kept out of the baseline

    def keys(self) -> int:
        return len(self.ips) + len(self.accounts)

    # -- windows ---------------------------------------------------------------------------------
    def _roll(self, s: _Window, time: int) -> None:
        elapsed = time - s.start
        if elapsed < 2 * self.window:
            s.prev_failures = s.failures
            s.prev_accounts = len(s.accounts)
            s.start = time - elapsed % self.window
        else:
            s.prev_failures = s.prev_accounts = 0
            s.start = time
        s.failures = 0
        s.accounts = {}
        s.taken = {}

    def _window(self, states: KeyedStates[str, _Window], key: str, time: int) -> _Window:
        s = states.data.get(key)
        if s is None:
            return states.admit(key, _Window(time))
        if time - s.start >= self.window:
            self._roll(s, time)
        s.seen = time
        return s

    def _estimate(self, s: _Window, now: int, value: int, prev: int) -> int:
        remaining = self.window - (now - s.start)
        if prev and remaining > 0:
            return value + prev * remaining // self.window
        return value

    # -- events ----------------------------------------------------------------------------------
    def observe(self, f: Facts, out: list[Signal]) -> None:
        """An authentication event, or a 401 at the API."""
        if f.success:
            if f.kind == AUTH and f.account is not None:
                s = self.ips.data.get(f.ip)
                if s is not None and s.failures and f.account in s.accounts:
                    s.taken[f.account] = None
            return
        if f.detail in _REUSE:
            return
        time = f.time
        account = f.account if f.kind == AUTH else None
        s = self._window(self.ips, f.ip, time)
        s.failures += 1
        s.ids.append(f.uid)
        if account is not None and len(s.accounts) < _MAX_ACCOUNTS:
            s.accounts[account] = None
        self._check_ip(f, s, out)
        if account is None:
            return
        a = self._window(self.accounts, account, time)
        a.failures += 1
        a.ids.append(f.uid)
        if len(a.accounts) < _MAX_ACCOUNTS:
            a.accounts[f.ip] = None  # for an account, the addresses it failed from
        if a.failures >= self.p.account_failures or a.prev_failures:
            self._check_account(f, account, a, out)
        self._population(f, account, out)

    def _check_ip(self, f: Facts, s: _Window, out: list[Signal]) -> None:
        p = self.p
        time = f.time
        failures = self._estimate(s, time, s.failures, s.prev_failures)
        accounts = self._estimate(s, time, len(s.accounts), s.prev_accounts)
        if failures < p.ip_failures and accounts < p.ip_accounts:
            return
        severity = 5 if s.taken else p.severity
        key = "ip:" + f.ip
        repeat = self.may_signal(key, time, severity)
        if not repeat:
            return
        evidence: dict[str, Any] = {
            "failures": failures,
            "accounts": accounts,
            "window_s": self.window // 1000,
            "thresholds": {"failures": p.ip_failures, "accounts": p.ip_accounts},
            "sample_accounts": sample(s.accounts),
            "signed_in_after_failures": sample(s.taken),
            "last_detail": f.detail,
        }
        what = f"{accounts} accounts" if accounts >= p.ip_accounts else "failures"
        summary = f"{failures} failed authentications from {f.ip} in {self.window // 60000} min ({what})"
        if s.taken:
            summary += f"; then signed in as {len(s.taken)} of them"
        self.emit(out, key, time, severity, summary, evidence, s.ids, repeat, scope=f.operation)

    def _check_account(self, f: Facts, account: str, a: _Window, out: list[Signal]) -> None:
        p = self.p
        time = f.time
        failures = self._estimate(a, time, a.failures, a.prev_failures)
        if failures < p.account_failures:
            return
        if len(a.accounts) < p.account_addresses and failures < p.ip_failures:
            return  # one address: its owner who forgot the password, or the address rule's business
        key = "account:" + account
        repeat = self.may_signal(key, time, p.severity)
        if not repeat:
            return
        evidence: dict[str, Any] = {
            "failures": failures,
            "addresses": len(a.accounts),
            "window_s": self.window // 1000,
            "threshold": p.account_failures,
            "sample_addresses": sample(a.accounts),
            "last_detail": f.detail,
        }
        summary = (
            f"{failures} failed sign-ins for account {account!r} from {len(a.accounts)} "
            f"address(es) in {self.window // 60000} min"
        )
        self.emit(out, key, time, p.severity, summary, evidence, a.ids, repeat, scope=f.operation)

    def _population(self, f: Facts, account: str, out: list[Signal]) -> None:
        time = f.time
        p = self.p
        if self.pop_start < 0:
            self.pop_start = time
        elif time - self.pop_start >= self.bucket:
            periods = (time - self.pop_start) // self.bucket
            count = len(self.pop_accounts)
            if self.pop_flagged:
                self.pop_flagged = False
                self.baseline.n += 1
            else:
                self.baseline.add(count)
                # a bucket below the bar ends the episode: another campaign is signalled at once
                for key in [k for k in self.signalled if k.startswith("service:")]:
                    del self.signalled[key]
            self.baseline.decay(periods - 1)
            self.pop_prev = count if periods == 1 else 0
            self.pop_start += periods * self.bucket
            self.pop_accounts = {}
            self.pop_ips = {}
            base = self.baseline
            bar = max(
                float(p.population_min),
                base.high(p.population_sigmas),
                p.population_factor * base.mean,
            )
            self.pop_bar = bar
        if len(self.pop_accounts) < _MAX_POPULATION:
            self.pop_accounts[account] = None
        if len(self.pop_ips) < _MAX_POPULATION:
            self.pop_ips[f.ip] = self.pop_ips.get(f.ip, 0) + 1
        self.pop_ids.append(f.uid)
        if self.baseline.n < p.warmup:
            return
        count = len(self.pop_accounts)
        remaining = self.bucket - (time - self.pop_start)
        if self.pop_prev and remaining > 0:
            count += self.pop_prev * remaining // self.bucket
        if count < self.pop_bar:
            return
        self.pop_flagged = True
        key = "service:" + (f.service or "sign-in")
        # spread over as many addresses as the bar: no address rule can stop it, one level more
        severity = min(p.severity + 1, 5) if len(self.pop_ips) >= p.population_min else p.severity
        repeat = self.may_signal(key, time, severity)
        if not repeat:
            return
        busiest = sorted(self.pop_ips.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        evidence: dict[str, Any] = {
            "failing_accounts": count,
            "baseline_mean": round(self.baseline.mean, 3),
            "threshold": round(self.pop_bar, 1),
            "bucket_s": self.bucket // 1000,
            "addresses": len(self.pop_ips),
            "max_failures_per_address": busiest[0][1] if busiest else 0,
            "busiest_addresses": [ip for ip, _ in busiest],
            "sample_accounts": sample(self.pop_accounts),
        }
        summary = (
            f"{count} accounts failed to sign in within {self.bucket // 60000} min, from "
            f"{len(self.pop_ips)} address(es) (baseline {self.baseline.mean:.1f} a bucket): "
            "credential stuffing against the service"
        )
        self.emit(out, key, time, severity, summary, evidence, self.pop_ids, repeat, "sign-in", False)

    def sweep(self, now: int) -> None:
        super().sweep(now)
        self.ips.sweep(now - self.idle_ms)
        self.accounts.sweep(now - self.idle_ms)

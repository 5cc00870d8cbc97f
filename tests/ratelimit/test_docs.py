"""The policy shown in docs/rate-limits.md is valid for the example customer API."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from apishield.runtime import load_runtime

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "customer_api"


def test_the_documented_policy_loads_against_the_example(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "rate-limits.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    documented = yaml.safe_load(block.group(1))
    policy = yaml.safe_load((EXAMPLE / "apishield.yaml").read_text())
    policy.update(documented)
    policy["openapi"] = str(EXAMPLE / "openapi.yaml")
    policy["auth"]["revocation"]["store"] = f"sqlite:///{tmp_path / 'revocations.db'}"
    path = tmp_path / "apishield.yaml"
    path.write_text(yaml.safe_dump(policy))
    names = load_runtime(path).pipeline.names
    assert {"rate_limit_early", "rate_limit", "rate_limit_outcome"} <= set(names)

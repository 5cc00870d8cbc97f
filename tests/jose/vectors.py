"""Where the vendored test vectors live, and how tests load them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
WYCHEPROOF = VECTORS / "wycheproof" / "testvectors_v1"
COOKBOOK = VECTORS / "jose-cookbook"

requires_vectors = pytest.mark.skipif(
    not VECTORS.is_dir(), reason="tests/vectors is missing (vendored Wycheproof and JOSE Cookbook files)"
)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_if_present(path: Path) -> Any:
    """The parsed file, or None when the vectors are not there (the tests then skip)."""
    return load(path) if path.is_file() else None

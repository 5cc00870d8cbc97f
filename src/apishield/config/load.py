"""Reading ``apishield.yaml`` into a :class:`~apishield.config.model.Config`.

Every problem is reported at once, each with file, line and key path, so a
user fixes a config in one pass. Relative paths in the policy resolve against
the folder of the policy file, never the current directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from apishield.config.model import Config
from apishield.config.yamlpos import LoadedDocument, SourceError, load_document

__all__ = ["ConfigError", "ConfigIssue", "LoadedConfig", "format_path", "load_config", "read_mapping"]


@dataclass(frozen=True)
class ConfigIssue:
    source: str
    line: int | None
    path: tuple[str | int, ...]
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        key = format_path(self.path)
        head = f"{where}: {self.severity}: " if self.severity == "warning" else f"{where}: "
        return head + (f"{key}: " if key else "") + self.message


class ConfigError(Exception):
    """One or more configuration errors."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path
    document: LoadedDocument

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """A path from the policy, resolved against the policy file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _message(err_type: str, msg: str, key: str | int | None) -> str:
    if err_type == "extra_forbidden":
        return f"unknown key {key!r}"
    if err_type == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    return msg


def issues_from_validation(exc: ValidationError, doc: LoadedDocument) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        # pydantic appends the union member / literal tag to some locations; keep key paths only
        path = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        key = path[-1] if path else None
        issues.append(
            ConfigIssue(doc.source, doc.line_of(path), path, _message(err["type"], err["msg"], key))
        )
    return issues


def read_mapping(path: str | Path, what: str = "the policy") -> LoadedDocument:
    """Parse a YAML file that must hold a mapping; problems become a :class:`ConfigError`."""
    try:
        doc = load_document(Path(path), display=str(path))
    except SourceError as exc:
        raise ConfigError([ConfigIssue(exc.source, exc.line, (), exc.message)]) from None
    if not isinstance(doc.value, dict):
        raise ConfigError([ConfigIssue(doc.source, 1, (), f"{what} must be a YAML mapping")])
    return doc


def load_config(path: str | Path) -> LoadedConfig:
    """Load and validate a policy file; raises :class:`ConfigError`."""
    p = Path(path)
    doc = read_mapping(p)
    try:
        config = Config.model_validate(doc.value)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, doc)) from None
    return LoadedConfig(config=config, path=p.resolve(), document=doc)

"""Streaming detection of unusual access patterns over the audit event stream.

:class:`DetectionEngine` (sans I/O) turns OCSF audit events into
:class:`Signal` objects; the alerting side aggregates signals into alerts
and enforces their responses. :mod:`apishield.detect.simulate` generates
labelled traffic of the reference scenario and measures the detectors on it
(``apishield simulate``); :mod:`apishield.detect.replay` reads stored events
back through the engine (``apishield detect replay``).
"""

from apishield.detect.engine import DetectionEngine, EngineStats
from apishield.detect.facts import Facts, extract
from apishield.detect.signal import DETECTORS, Signal

__all__ = ["DETECTORS", "DetectionEngine", "EngineStats", "Facts", "Signal", "extract"]

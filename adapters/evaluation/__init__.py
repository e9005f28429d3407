"""Probe evaluation: the fixed probes (``probes``) and their measurement on a GGUF (``runner``)."""

from adapters.evaluation.probes import (
    PROBES_FILE,
    ProbeSet,
    build_demo_probes,
    count_violations,
    encode_probes,
    fraction_correct,
    fraction_right,
    js_divergence,
    matches,
    outcomes,
    probes_hash,
    recall_groups,
    write_probes,
)
from adapters.evaluation.probe_file import ProbeFileError, read_probes
from adapters.evaluation.measure import ProbeReport, evaluate, evaluate_report

__all__ = [
    "PROBES_FILE",
    "ProbeFileError",
    "ProbeReport",
    "ProbeSet",
    "build_demo_probes",
    "count_violations",
    "encode_probes",
    "evaluate",
    "evaluate_report",
    "fraction_correct",
    "fraction_right",
    "js_divergence",
    "matches",
    "outcomes",
    "probes_hash",
    "read_probes",
    "recall_groups",
    "write_probes",
]

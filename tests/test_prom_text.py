"""The strict Prometheus text parser against prometheus-client's, on generated lines.

The engine-progress probe reads vLLM's ``/metrics`` lines with a strict parser of its own
(:mod:`watchdog.probes.prom_text`) and hands anything it does not take to prometheus-client.
Differential: for generated sample lines, valid and mangled, whatever the strict parser
accepts, prometheus-client reads as the same (name, labels, value); what prometheus-client
refuses, the strict parser never accepts. Whole texts (HELP/TYPE lines and family rules
included) give the probe the same sums, or the same refusal, as a reading by prometheus-client
alone.
"""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from watchdog.core.model import FailureKind
from watchdog.probes._faults import Fault
from watchdog.probes.progress import GENERATED, RUNNING, Sample, parse_lines
from watchdog.probes.prom_text import sample_line, strict_samples

Reading = tuple[str, dict[str, str], float]


def client_line(line: str) -> Reading | str | None:
    """prometheus-client's reading of one line: (name, labels, value), None if it yields no
    sample (a comment), ``"refused"`` if it raises."""
    try:
        samples = [s for f in text_string_to_metric_families(line + "\n") for s in f.samples]
    except Exception:  # whatever it raises, it refused the line
        return "refused"
    if not samples:
        return None
    assert len(samples) == 1, samples
    s = samples[0]
    return s.name, s.labels, s.value


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ------------------------------------------------------------------ generated sample lines
NAMES = [
    RUNNING,
    GENERATED + "_total",
    GENERATED,
    "a",
    "_x",
    ":y",
    "x_total",
    "_total",
    "1x",
    "x-y",
    "",
    "é",
    "x y",
]
LABEL_NAMES = ["engine", "model_name", "le", "_a", "a1", "__name__", "__x", "a:b", "1a", "", "a b"]
LABEL_TEXT = st.text(
    alphabet=st.sampled_from(['"', "\\", "n", ",", "}", "{", "=", " ", "a", "é", "\t", "#", "0"]),
    max_size=8,
)
VALUES = [
    "1",
    "0",
    "-0",
    "2.0",
    "12345.0",
    "1.7e+09",
    "1e3",
    "1E-3",
    ".5",
    "5.",
    "+.5e-3",
    "+1",
    "-2.5",
    "007",
    "NaN",
    "+Inf",
    "-Inf",
    "Inf",
    "nan",
    "inf",
    "+NaN",
    "Infinity",
    "1_0",
    "0x1A",
    "١",
    "",
    "1e",
    "1" + "0" * 80,
    "1" + "0" * 400,
    "9" * 20,
]
TIMESTAMPS = ["", " 123", " -5", " 0", " 1.5", " x", " 1 2", "  7", "\t7", " 1" + "0" * 19]
SEPARATORS = [" ", " ", " ", "  ", "\t", ""]
MANGLE = [" ", "\t", '"', "\\", "{", "}", ",", "=", "#", "_", "\xa0", "\x1c", "x", "1", "é"]


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def sample_lines(draw: st.DrawFn, *, mangled: bool) -> str:
    name = draw(st.sampled_from(NAMES if mangled else NAMES[:8]))
    pairs = st.tuples(st.sampled_from(LABEL_NAMES if mangled else LABEL_NAMES[:5]), LABEL_TEXT)
    if mangled:
        labels = draw(st.lists(pairs, max_size=3))
    else:
        labels = draw(st.lists(pairs, max_size=3, unique_by=lambda pair: pair[0]))
    raw_values = mangled and draw(st.booleans())
    body = ",".join(f'{k}="{v if raw_values else escape(v)}"' for k, v in labels)
    if labels and draw(st.booleans()):
        body += ","  # a trailing comma is in the grammar
    braces = f"{{{body}}}" if labels or draw(st.booleans()) else ""
    value = draw(st.sampled_from(VALUES if mangled else VALUES[:18]))
    stamp = draw(st.sampled_from(TIMESTAMPS if mangled else TIMESTAMPS[:4]))
    sep = draw(st.sampled_from(SEPARATORS)) if mangled else " "
    line = f"{name}{braces}{sep}{value}{stamp}"
    if mangled:
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(line)))
            if draw(st.booleans()) and at < len(line):
                line = line[:at] + line[at + 1 :]
            else:
                line = line[:at] + draw(st.sampled_from(MANGLE)) + line[at:]
    return line


def agree(line: str) -> Reading | None:
    """The strict reading of ``line``, checked against prometheus-client's."""
    mine = sample_line(line.strip())
    theirs = client_line(line)
    if mine is None:
        return None  # not taken: the probe hands the line to prometheus-client
    assert theirs not in (None, "refused"), f"{line!r}: strict took {mine}, client {theirs}"
    assert isinstance(theirs, tuple)
    assert (mine[0], mine[1]) == (theirs[0], theirs[1]), line
    # As floats, which is what the probe sums: prometheus-client keeps an integer as int.
    assert same_value(mine[2], float(theirs[2])), line
    return mine


@settings(max_examples=600, deadline=None)
@given(sample_lines(mangled=True))
@example('vllm:num_requests_running{engine="0",model_name="m"} 2.0')
@example('a{le="a\\\\"} 1')  # an escaped backslash, then the closing quote
@example('a{le="a\\"} 1')  # an escaped quote: the value never closes
@example('a{__name__="b"} 1')
@example('a{engine="0",engine="1"} 1')
@example('a 1 # {trace_id="x"} 2')  # an exemplar
@example("a 1" + "0" * 400)  # an integer beyond any float
@example("a " + "9" * 20)  # an integer a float rounds
def test_what_the_strict_parser_reads_prometheus_client_reads_the_same(line: str) -> None:
    agree(line)


@settings(max_examples=300, deadline=None)
@given(sample_lines(mangled=False))
def test_a_line_in_the_format_is_read_by_the_strict_parser(line: str) -> None:
    assert agree(line) is not None, f"the strict parser declined a line in the grammar: {line!r}"


def test_escapes_nan_infinities_and_timestamps_are_read() -> None:
    name, labels, value = agree('x{a="q\\"\\\\\\n",b="}{,="} NaN 1700000000000') or ("", {}, 0.0)
    assert (name, labels) == ("x", {"a": 'q"\\\n', "b": "}{,="})
    assert math.isnan(value)
    assert agree("x +Inf") == ("x", {}, math.inf)
    assert agree("x{} -Inf -5") == ("x", {}, -math.inf)


# ------------------------------------------------------------------ whole texts, as the probe
COMMENTS = [
    f"# HELP {RUNNING} Number of requests in model execution batches.",
    f"# TYPE {RUNNING} gauge",
    f"# TYPE {RUNNING} counter",
    f"# TYPE {RUNNING} histogram",
    f"# HELP {GENERATED}_total Number of generation tokens processed.",
    f"# TYPE {GENERATED}_total counter",
    f"# TYPE {GENERATED} counter",
    f"# HELP {GENERATED} tokens",
    f"# TYPE {GENERATED} summary",
    f"# TYPE {GENERATED} bogus",
    f"# TYPE {RUNNING}",
    f"# HELP {RUNNING}",
    f"# HELP  {RUNNING} two spaces",
    f'# HELP {RUNNING} a "quoted doc',
    f"# TYPE {RUNNING} gauge extra",
]
SAMPLES = [
    f'{RUNNING}{{engine="0",model_name="m"}} 2.0',
    f'{RUNNING}{{engine="1",model_name="m"}} 1',
    f"{RUNNING} -0",
    f'{GENERATED}_total{{engine="0",model_name="m"}} 100.0',
    f'{GENERATED}_total{{engine="1"}} 50 1700000000000',
    f"{GENERATED} 7",
    f"{GENERATED}_total NaN",
    f"{GENERATED}_total 1" + "0" * 400,
    f"{RUNNING} 1e308",
    f"{RUNNING}{{engine=0}} 1",
    f'{RUNNING}{{a="b"}}  1',
]
LINES = st.one_of(
    st.sampled_from(COMMENTS), st.sampled_from(SAMPLES), sample_lines(mangled=True), st.just("")
)


def by_prometheus_client(text: str) -> Sample | str | None:
    """The probe's reading when prometheus-client alone parsed the lines (how it was first
    written): the sums, or ``"refused"``."""
    running = generated = None
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == RUNNING:
                    running = (running or 0.0) + s.value
                elif s.name == GENERATED + "_total":
                    generated = (generated or 0.0) + s.value
    except (ValueError, TypeError, IndexError, OverflowError):
        return "refused"
    if running is None or generated is None:
        return None
    return Sample(running, generated)


def by_the_probe(text: str) -> Sample | str | None:
    try:
        return parse_lines(text)
    except Fault as fault:
        assert fault.kind is FailureKind.BAD_RESPONSE
        return "refused"


def same_reading(a: Sample | str | None, b: Sample | str | None) -> bool:
    if isinstance(a, Sample) and isinstance(b, Sample):
        return same_value(a.running, b.running) and same_value(a.generated, b.generated)
    return a == b


@settings(max_examples=500, deadline=None)
@given(st.lists(LINES, max_size=10))
@example([COMMENTS[6], SAMPLES[5], SAMPLES[0]])  # a counter family renames its samples
@example([COMMENTS[2], SAMPLES[0], SAMPLES[3]])  # … even the running gauge's
@example([COMMENTS[9], SAMPLES[0], COMMENTS[0]])  # an unknown type fails once the family ends
@example([SAMPLES[7], SAMPLES[0]])  # an integer beyond any float: refused, not a crash
def test_the_probe_reads_a_text_as_prometheus_client_alone_would(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    assert same_reading(by_the_probe(text), by_prometheus_client(text)), text
    strict = strict_samples(text)
    if strict is not None:  # what it takes whole, it reads sample for sample the same
        theirs = [
            (s.name, s.value) for f in text_string_to_metric_families(text) for s in f.samples
        ]
        assert [n for n, _ in strict] == [n for n, _ in theirs]
        assert all(same_value(a, b) for (_, a), (_, b) in zip(strict, theirs, strict=True))


def test_a_real_vllm_page_is_read_by_the_strict_parser_alone() -> None:
    from watchdog.probes.progress import _wanted_lines
    from watchdog.sim.vllm_profiles import PROFILES

    for version, profile in PROFILES.items():
        lines = _wanted_lines(profile.metrics("m", running=2, generated=12345, prompt=9).body)
        assert strict_samples(lines) is not None, version
        assert parse_lines(lines) == Sample(2, 12345), version


def test_a_megabyte_label_value_is_read_and_declined_whole() -> None:
    # The grammar never backtracks over a line (a backtracking one would not end here); the
    # cost of such lines is in benchmarks/bench_progress.py.
    value = "x\\\\" * (1 << 19)  # an escaped backslash, a megabyte of them
    line = f'{RUNNING}{{a="{value}", b="1"}} 1'
    assert sample_line(line.replace(", ", ",")) is not None
    assert sample_line(line) is None  # a blank after the comma: declined after one scan
    assert sample_line(line.replace(", ", ",")[:-2]) is None  # no value

"""Prometheus text-format lines read strictly and cheaply (adapter helper of :mod:`.progress`).

The engine-progress probe reads a few sample lines of vLLM's ``/metrics`` at every run;
prometheus-client's text parser walks each line character by character in Python (about
30 µs a line). Owns :func:`sample_line` and :func:`strict_samples`, which read the lines that
follow the format's grammar exactly — ``name``, optional ``{label="value",…}`` (escapes
``\\\\``, ``\\"``, ``\\n``; a trailing comma allowed), one space, the value (a decimal float,
``NaN``, ``+Inf``, ``-Inf``), optionally one space and an integer timestamp; ``# HELP`` and
``# TYPE`` lines — with regular expressions that run in C and never backtrack over a line.

What they accept gets exactly what prometheus-client makes of it: the same names (its family
rules included: a ``counter`` family not named ``…_total`` gives its samples that suffix), labels
and values, in the same order (``tests/test_prom_text.py`` compares the two on generated lines).
Anything else — a line prometheus-client would refuse or reads by a laxer rule (extra blanks,
other escapes, ``__name__`` in the labels, an exemplar, a float timestamp…) — makes
:func:`strict_samples` return None, and the caller hands the text to prometheus-client
(:func:`client_samples`), which has the last word. Pure functions, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["client_samples", "sample_line", "strict_samples"]

Samples = list[tuple[str, float]]  # (sample name, value) in prometheus-client's order

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# A label value: unrolled ``(plain | escape)*``, possessive, so a long value is one pass.
_TEXT = r'[^"\\]*+(?:\\[\\"n][^"\\]*+)*+'
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_LABELS = rf'{_LABEL_NAME}="{_TEXT}"'
_VALUE = r"[+-]?(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-]?[0-9]++)?|NaN|[+-]?Inf"
_SAMPLE = re.compile(
    rf"({_NAME})(?:\{{((?:{_LABELS}(?:,{_LABELS})*+,?)?)\}})? ({_VALUE})(?: -?[0-9]{{1,18}})?"
)
_ONE_LABEL = re.compile(rf'({_LABEL_NAME})="({_TEXT})",?')
_ESCAPE = re.compile(r'\\[\\n"]')
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_COMMENT = re.compile(rf"# (HELP|TYPE) ({_NAME})(?: (\S.*))?")
# The types a family can declare, and the sample names each admits (prometheus-client's table).
_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}
_VALUE_CHARS = 64  # longer is no float a server writes; prometheus-client reads it as an int


def sample_line(line: str) -> tuple[str, dict[str, str], float] | None:
    """(name, labels, value) of one stripped sample line in the strict grammar, else None."""
    found = _SAMPLE.fullmatch(line)
    if found is None:
        return None
    name, labels_text, value = found.groups()
    if len(value) > _VALUE_CHARS:
        return None
    labels: dict[str, str] = {}
    if labels_text:
        for label in _ONE_LABEL.finditer(labels_text):
            key, text = label.groups()
            if key in labels or key.startswith("__"):  # refused, or read as the metric's name
                return None
            labels[key] = _ESCAPE.sub(_unescape, text) if "\\" in text else text
    return name, labels, float(value)


def _unescape(match: re.Match[str]) -> str:
    return _UNESCAPED[match.group()]


def strict_samples(text: str) -> Samples | None:
    """Every sample of ``text`` as prometheus-client's parser yields them; None as soon as a
    line is outside the strict grammar (or would make prometheus-client fail)."""
    out: Samples = []
    name = ""  # the current family, as prometheus-client tracks it
    kind = "untyped"
    family: Samples = []
    allowed: tuple[str, ...] = ()
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if line[0] == "#":
            comment = _COMMENT.fullmatch(line)
            if comment is None:
                return None
            what, candidate, rest = comment.groups()
            if what == "TYPE" and rest not in _SUFFIXES:
                return None
            if candidate != name:
                if name and not _close(out, name, kind, family):
                    return None
                name, kind, family = candidate, "untyped", []
                allowed = (candidate,)
            if what == "TYPE":
                kind = rest
                allowed = tuple(name + suffix for suffix in _SUFFIXES[rest])
            continue
        sample = sample_line(line)
        if sample is None:
            return None
        if sample[0] in allowed:
            family.append((sample[0], sample[2]))
            continue
        if name and not _close(out, name, kind, family):
            return None
        name, kind, family, allowed = "", "untyped", [], ()
        out.append((sample[0], sample[2]))  # a family of its own, untyped
    if name and not _close(out, name, kind, family):
        return None
    return out


def _close(out: Samples, name: str, kind: str, family: Samples) -> bool:
    """Add a finished family's samples to ``out``; False where prometheus-client would fail."""
    if kind == "counter" and not name.endswith("_total"):
        out.extend((sample + "_total", value) for sample, value in family)
        return True
    if kind == "counter" and name == "_total":
        return False  # the family would be named "": prometheus-client refuses it
    out.extend(family)
    return True


def client_samples(text: str) -> Samples:
    """Every sample of ``text`` by prometheus-client's parser: the reading of last resort.

    Raises what the parser raises for text it refuses (ValueError and the like)."""
    # Imported here: ~80 ms that every CLI command would pay at start-up otherwise.
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, s.value) for f in text_string_to_metric_families(text) for s in f.samples]

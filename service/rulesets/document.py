"""Reading ruleset documents: YAML or JSON text -> plain data, safely.

Nothing here constructs Python objects from tags. YAML is read as libyaml's parse events
(PyYAML's CSafeLoader) and turned into data by our own small builder, so:
- only the standard scalar tags are accepted (anything else, e.g. `!!python/object`, is a problem);
- floats become exact `Decimal`s, `yes`/`no`/`on`/`off` stay strings (YAML 1.2 booleans only);
- anchors and aliases are refused (no "billion laughs");
- duplicate mapping keys are refused instead of silently keeping the last one;
- every value's location (line) is remembered for problem reports.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal, InvalidOperation

import simplejson
import yaml

from service import canonical
from service.errors import Problem

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 40
# Numbers a ruleset may hold: far beyond any amount or rate, small enough that exact
# decimal arithmetic on them stays instant (1e999999 would not).
MAX_NUMBER_DIGITS = 34
MAX_NUMBER_EXPONENT = 30

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"

# libyaml's parser (C) when PyYAML was built with it; the same events from the Python one otherwise.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL_WORDS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT_RE = re.compile(r"^[-+]?[0-9]+$")


@dataclass
class SourceDocument:
    """A parsed document: its data, where each part came from, and its identity."""

    data: object
    source_text: str
    source_format: str  # "yaml" | "json"
    lines: dict[str, int] = field(default_factory=dict)  # location path -> 1-based line
    # Unsafe or ambiguous constructs (tags, aliases, duplicate keys) found while reading;
    # the offending value reads as null so validation can go on and report everything.
    problems: list[Problem] = field(default_factory=list)

    @cached_property
    def canonical_json(self) -> str:
        return canonical.dumps(normalize(self.data))

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json.encode("utf-8")).hexdigest()


class DocumentError(Exception):
    """The text is not a readable document; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def normalize(value):
    """The canonical data form: dates as ISO text, one spelling per number."""
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, Decimal):
        return canonical.normalize_decimal(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def parse_document(text: str | bytes, source_format: str | None = None) -> SourceDocument:
    """Parse YAML or JSON (auto-detected when `source_format` is None)."""
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise DocumentError([Problem("document_too_large", "", f"document is larger than {MAX_DOCUMENT_BYTES} bytes")])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError([Problem("not_utf8", "", f"document is not UTF-8 text ({exc.reason} at byte {exc.start})")])
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise DocumentError([Problem("document_too_large", "", f"document is larger than {MAX_DOCUMENT_BYTES} bytes")])
    if source_format is None:
        source_format = "json" if text.lstrip().startswith("{") else "yaml"
    if source_format == "json":
        return _parse_json(text)
    if source_format == "yaml":
        return _parse_yaml(text)
    raise ValueError(f"unknown source format {source_format!r}")


# -- JSON ---------------------------------------------------------------------------

def _parse_json(text: str) -> SourceDocument:
    def pairs(items):
        out = {}
        for key, value in items:
            if key in out:
                raise DocumentError([Problem("duplicate_key", "", f"duplicate key {key!r}")])
            out[key] = value
        return out

    try:
        data = simplejson.loads(text, use_decimal=True, object_pairs_hook=pairs)
    except DocumentError:
        raise
    except simplejson.JSONDecodeError as exc:
        raise DocumentError([Problem("invalid_json", "", f"invalid JSON: {exc.msg}", line=exc.lineno)])
    except RecursionError:
        raise DocumentError([Problem("too_deep", "", "document is nested too deeply")])
    _check_depth(data, 0)
    problems: list[Problem] = []
    data = screen_values(data, "", problems)
    return SourceDocument(data=data, source_text=text, source_format="json", problems=problems)


def number_problem(number) -> str | None:
    """Why a number is refused in a document (None if it is fine)."""
    if isinstance(number, bool):
        return None
    if isinstance(number, int):
        return "integer has too many digits" if len(str(abs(number))) > MAX_NUMBER_DIGITS else None
    if isinstance(number, Decimal):
        if not number.is_finite():
            return "not a finite number"
        digits = number.as_tuple()
        if len(digits.digits) > MAX_NUMBER_DIGITS or abs(number.adjusted()) > MAX_NUMBER_EXPONENT:
            return f"number out of range (at most {MAX_NUMBER_DIGITS} digits, magnitude 1e±{MAX_NUMBER_EXPONENT})"
    return None


def _text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text contains an unpaired surrogate (not valid Unicode)"
    return None


def screen_values(value, path: str, problems: list[Problem]):
    """Replace out-of-range numbers and invalid text by null, recording a problem for each."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _text_problem(key):
                problems.append(Problem("bad_text", path, _text_problem(key)))
                continue
            out[key] = screen_values(item, child, problems)
        return out
    if isinstance(value, list):
        return [screen_values(item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if isinstance(value, str):
        reason = _text_problem(value)
    else:
        reason = number_problem(value)
    if reason:
        problems.append(Problem("bad_value", path, reason))
        return None
    return value


def _check_depth(value, depth):
    if depth > MAX_DEPTH:
        raise DocumentError([Problem("too_deep", "", f"document is nested deeper than {MAX_DEPTH} levels")])
    if isinstance(value, dict):
        for v in value.values():
            _check_depth(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_depth(v, depth + 1)


# -- YAML ---------------------------------------------------------------------------

def _parse_yaml(text: str) -> SourceDocument:
    builder = _YamlBuilder(text)
    try:
        data = builder.document()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError([Problem("invalid_yaml", "", f"invalid YAML: {problem}", line=line)])
    finally:
        builder.dispose()
    return SourceDocument(data=data, source_text=text, source_format="yaml", lines=builder.lines,
                          problems=builder.problems)


class _YamlBuilder:
    """Builds data straight from libyaml's parse events (yaml.CSafeLoader: C speed, no node
    tree, nothing constructed from tags). libyaml's parser is a state machine, not a
    recursion, and this builder stops descending at MAX_DEPTH, so no nesting can exhaust a stack."""

    def __init__(self, text: str):
        self.loader = _Loader(text)
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}

    def dispose(self):
        self.loader.dispose()

    def _problem(self, code, path, message, event):
        self.problems.append(Problem(code, path, message, line=event.start_mark.line + 1))

    def document(self):
        loader = self.loader
        loader.get_event()  # StreamStart
        if loader.check_event(yaml.StreamEndEvent):
            raise DocumentError([Problem("empty_document", "", "the document is empty")])
        loader.get_event()  # DocumentStart
        data = self.node("", 0)
        loader.get_event()  # DocumentEnd
        if not loader.check_event(yaml.StreamEndEvent):
            extra = loader.peek_event()
            raise DocumentError([Problem("invalid_yaml", "", "invalid YAML: expected a single document in the stream, "
                                         "but found another document", line=extra.start_mark.line + 1)])
        return data

    def _skip(self, event):
        """Consume the rest of a collection whose start event was just read."""
        depth = 1
        while depth:
            e = self.loader.get_event()
            if isinstance(e, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
            elif isinstance(e, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1

    def _tag(self, event, kind):
        tag = event.tag
        if tag is None or tag == "!":
            value = event.value if kind is yaml.ScalarNode else None
            tag = self.loader.resolve(kind, value, event.implicit)
        return tag

    def node(self, path, depth):
        event = self.loader.get_event()
        self.lines.setdefault(path, event.start_mark.line + 1)
        if isinstance(event, yaml.AliasEvent):
            self._problem("yaml_alias", path, "YAML anchors and aliases are not allowed", event)
            return None
        collection = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if depth > MAX_DEPTH:
            self._problem("too_deep", path, f"nested deeper than {MAX_DEPTH} levels", event)
            if collection:
                self._skip(event)
            return None
        if isinstance(event, yaml.ScalarEvent):
            return self._scalar(self._tag(event, yaml.ScalarNode), event.value, path, event)
        if isinstance(event, yaml.SequenceStartEvent):
            tag = self._tag(event, yaml.SequenceNode)
            if tag != _SEQ:
                self._problem("yaml_tag", path, f"YAML tag {tag!r} is not allowed", event)
                self._skip(event)
                return None
            out = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                out.append(self.node(f"{path}[{len(out)}]", depth + 1))
            self.loader.get_event()
            return out
        return self._mapping(event, path, depth)

    def _mapping(self, event, path, depth):
        tag = self._tag(event, yaml.MappingNode)
        if tag != _MAP:
            self._problem("yaml_tag", path, f"YAML tag {tag!r} is not allowed", event)
            self._skip(event)
            return None
        loader = self.loader
        out = {}
        while not loader.check_event(yaml.MappingEndEvent):
            key_event = loader.peek_event()
            if not isinstance(key_event, yaml.ScalarEvent) or self._tag(key_event, yaml.ScalarNode) == "tag:yaml.org,2002:merge":
                self._problem("yaml_key", path, "mapping keys must be plain scalars (no merge keys)", key_event)
                self._discard()
                self._discard()
                continue
            loader.get_event()
            key = key_event.value
            if _text_problem(key):
                self._problem("bad_text", path, _text_problem(key), key_event)
                self._discard()
                continue
            child = f"{path}.{key}" if path else key
            if key in out:
                self._problem("duplicate_key", child, f"duplicate key {key!r}", key_event)
                self._discard()
                continue
            out[key] = self.node(child, depth + 1)
        loader.get_event()
        return out

    def _discard(self):
        """Consume one whole node (a scalar, an alias, or a collection) without building it."""
        event = self.loader.get_event()
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._skip(event)

    def _scalar(self, tag, value, path, node):
        if tag == _STR:
            reason = _text_problem(value)
            if reason:
                self._problem("bad_text", path, reason, node)
                return None
            return value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            # YAML 1.1 calls yes/no/on/off booleans; we keep them as the words they are.
            return _BOOL_WORDS.get(value, value)
        if tag == _INT:
            cleaned = value.replace("_", "")
            if _INT_RE.match(cleaned):
                if len(cleaned.lstrip("+-")) > MAX_NUMBER_DIGITS:
                    self._problem("bad_number", path, "integer has too many digits", node)
                    return None
                return int(cleaned)
            return value  # 0x.., 0o.., sexagesimal: keep the text, validation will complain
        if tag == _FLOAT:
            try:
                number = Decimal(value.replace("_", ""))
            except InvalidOperation:
                self._problem("bad_number", path, f"{value!r} is not a finite decimal number", node)
                return None
            reason = number_problem(number)
            if reason:
                self._problem("bad_number", path, f"{value[:40]!r}: {reason}", node)
                return None
            return number
        if tag == _TIMESTAMP:
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                return value  # a datetime or odd spelling: validation reports it where a date is needed
        self._problem("yaml_tag", path, f"YAML tag {tag!r} is not allowed (rulesets are data, not code)", node)
        return None

"""Reading ruleset documents: YAML or JSON text -> plain data, safely.

Nothing here constructs Python objects from tags. YAML is composed into a node tree
by PyYAML's safe composer and turned into data by our own small walker, so:
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

    @property
    def canonical_json(self) -> str:
        return canonical.dumps(normalize(self.data))

    @property
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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError([Problem("invalid_yaml", "", f"invalid YAML: {problem}", line=line)])
    except RecursionError:
        raise DocumentError([Problem("too_deep", "", "document is nested too deeply")])
    if node is None:
        raise DocumentError([Problem("empty_document", "", "the document is empty")])
    walker = _YamlWalker()
    data = walker.walk(node, "", 0)
    return SourceDocument(data=data, source_text=text, source_format="yaml", lines=walker.lines,
                          problems=walker.problems)


class _YamlWalker:
    def __init__(self):
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}
        self._seen: set[int] = set()

    def _problem(self, code, path, message, node):
        self.problems.append(Problem(code, path, message, line=node.start_mark.line + 1))

    def walk(self, node, path, depth):
        self.lines.setdefault(path, node.start_mark.line + 1)
        if depth > MAX_DEPTH:
            self._problem("too_deep", path, f"nested deeper than {MAX_DEPTH} levels", node)
            return None
        if id(node) in self._seen:
            # The composer hands back the same node object for an alias.
            self._problem("yaml_alias", path, "YAML anchors and aliases are not allowed", node)
            return None
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                self._problem("yaml_tag", path, f"YAML tag {node.tag!r} is not allowed", node)
                return None
            return [self.walk(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node, path, depth):
        if node.tag != _MAP:
            self._problem("yaml_tag", path, f"YAML tag {node.tag!r} is not allowed", node)
            return None
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                self._problem("yaml_key", path, "mapping keys must be plain scalars (no merge keys)", key_node)
                continue
            key = key_node.value
            if _text_problem(key):
                self._problem("bad_text", path, _text_problem(key), key_node)
                continue
            child = f"{path}.{key}" if path else key
            if key in out:
                self._problem("duplicate_key", child, f"duplicate key {key!r}", key_node)
                continue
            out[key] = self.walk(value_node, child, depth + 1)
        return out

    def _scalar(self, node, path):
        tag, value = node.tag, node.value
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

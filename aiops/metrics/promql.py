"""The PromQL subset the portal answers, parsed into a small tree (evaluation: `aiops.metrics.query`).

Supported:
- series selectors: `name`, `name{a="b",c!="d",e=~"f.*",g!~"h"}`, `{__name__=~"node_.*",job="x"}`
  (at least one matcher that does not match the empty string, as in Prometheus);
- range functions over a selector: `rate(sel[5m])`, `increase(sel[5m])` (counters, with resets),
  `avg_over_time`, `min_over_time`, `max_over_time`, `sum_over_time`, `count_over_time`,
  `last_over_time`;
- number literals and + - * / between numbers (Grafana's health check asks `1+1`).

Everything else (aggregations, binary operators between series, offset, @, subqueries, other
functions) is refused with an InvalidInput that names what is supported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from opsportal.errors import InvalidInput

RANGE_FUNCTIONS = (
    "rate",
    "increase",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
)
SUPPORTED = (
    'supported: series selectors (name{label="value", label!="v", label=~"re", label!~"re"}), '
    f"{', '.join(f'{name}(selector[duration])' for name in RANGE_FUNCTIONS)}, "
    "and number literals with + - * /"
)
AGGREGATIONS = ("sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "stdvar", "group")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MATCH_OPS = ("=~", "!~", "!=", "=")
TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>(?:0[xX][0-9a-fA-F]+)|(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?![a-zA-Z0-9_:.]))
      | (?P<duration>(?:[0-9]+(?:ms|s|m|h|d|w|y))+)
      | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<op>=~|!~|!=|==|>=|<=|=|>|<|\+|-|\*|/|%|\^|\(|\)|\{|\}|\[|\]|,|@)
    )""",
    re.VERBOSE | re.DOTALL,
)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\", '"': '"', "'": "'"}


def unsupported(what: str) -> InvalidInput:
    return InvalidInput(f"{what} is not supported; {SUPPORTED}.", field="query")


@dataclass(frozen=True)
class Matcher:
    """One label matcher; a missing label matches as the empty string, regexes are anchored (as in Prometheus)."""

    label: str
    op: str
    value: str
    pattern: re.Pattern | None = field(default=None, compare=False, repr=False)

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self.pattern is not None and self.pattern.fullmatch(value) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Selector:
    """A series selector: its matchers, `__name__` among them when the query names the metric."""

    matchers: tuple[Matcher, ...]

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        for matcher in self.matchers:
            value = name if matcher.label == "__name__" else labels.get(matcher.label, "")
            if not matcher.matches(value):
                return False
        return True

    @property
    def metric_name(self) -> str | None:
        """The metric name when a `__name__=` matcher fixes it."""
        for matcher in self.matchers:
            if matcher.label == "__name__" and matcher.op == "=":
                return matcher.value
        return None


@dataclass(frozen=True)
class RangeFunction:
    function: str
    selector: Selector
    range_seconds: float


@dataclass(frozen=True)
class Scalar:
    value: float


Expression = Selector | RangeFunction | Scalar


def parse_duration(text: str, *, field: str = "query") -> float:
    """A Prometheus duration (`90s`, `5m`, `1h30m`, `1d`) in seconds."""
    if not DURATION.fullmatch(text):
        raise InvalidInput(f"{text!r} is not a duration like 30s, 5m or 1h30m.", field=field)
    return sum(int(amount) * DURATION_UNITS[unit] for amount, unit in DURATION_PART.findall(text))


def _unquote(token: str) -> str:
    quote, body = token[0], token[1:-1]
    if quote == "`":
        return body
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        escape = body[index + 1]
        if escape in ESCAPES:
            out.append(ESCAPES[escape])
            index += 2
        elif escape in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[escape]
            digits = body[index + 2 : index + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise InvalidInput(f"bad escape \\{escape}{digits} in {token}.", field="query")
            out.append(chr(int(digits, 16)))
            index += 2 + width
        else:
            raise InvalidInput(f"unknown escape \\{escape} in {token}.", field="query")
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = TOKEN.match(text, position)
            if match is None or match.end() == position:
                snippet = text[position:].strip()[:20]
                raise InvalidInput(f"unexpected character at position {position}: {snippet!r}.", field="query")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise InvalidInput("unexpected end of the query.", field="query")
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        kind, text, position = self.take()
        if text != value or kind in ("string",):
            raise InvalidInput(f"expected {value!r} at position {position}, found {text!r}.", field="query")

    def parse(self) -> Expression:
        if not self.tokens:
            raise InvalidInput("required.", field="query")
        expression = self.expression()
        if self.peek() is not None:
            kind, text, _ = self.peek()
            if kind == "op" and text in ("+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<="):
                raise unsupported(f"the operator {text!r} between series")
            if text in ("offset", "@"):
                raise unsupported(f"{text!r} modifier")
            if kind == "op" and text == "[":
                raise unsupported("a range vector as the result (use it inside rate() or another function)")
            raise InvalidInput(f"unexpected {text!r} at position {self.peek()[2]}.", field="query")
        return expression

    # Scalars: numbers with + - * / and parentheses; a series may not take part.
    def expression(self) -> Expression:
        left = self.term()
        while (token := self.peek()) is not None and token[1] in ("+", "-") and token[0] == "op":
            self.take()
            right = self.term()
            left = self._arith(token[1], left, right)
        return left

    def term(self) -> Expression:
        left = self.unary()
        while (token := self.peek()) is not None and token[1] in ("*", "/") and token[0] == "op":
            self.take()
            right = self.unary()
            left = self._arith(token[1], left, right)
        return left

    def _arith(self, op: str, left: Expression, right: Expression) -> Scalar:
        if not isinstance(left, Scalar) or not isinstance(right, Scalar):
            raise unsupported(f"the operator {op!r} between series")
        a, b = left.value, right.value
        if op == "+":
            return Scalar(a + b)
        if op == "-":
            return Scalar(a - b)
        if op == "*":
            return Scalar(a * b)
        if b == 0:
            return Scalar(math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b))
        return Scalar(a / b)

    def unary(self) -> Expression:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in ("+", "-"):
            self.take()
            operand = self.unary()
            if not isinstance(operand, Scalar):
                raise unsupported("unary minus on a series")
            return Scalar(-operand.value if token[1] == "-" else operand.value)
        return self.primary()

    def primary(self) -> Expression:
        kind, text, position = self.take()
        if kind == "number":
            return Scalar(float(int(text, 16)) if text.lower().startswith("0x") else float(text))
        if kind == "op" and text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if kind == "op" and text == "{":
            self.index -= 1
            return self.selector(None)
        if kind == "ident":
            lowered = text.lower()
            if lowered in ("inf", "nan"):
                return Scalar(math.inf if lowered == "inf" else math.nan)
            if text in AGGREGATIONS:
                raise unsupported(f"the aggregation {text!r}")
            following = self.peek()
            if following is not None and following[0] == "op" and following[1] == "(":
                return self.function(text)
            if text in ("by", "without", "on", "ignoring", "offset", "bool", "and", "or", "unless"):
                raise unsupported(f"{text!r}")
            return self.selector(text)
        if kind == "string":
            raise unsupported("a string literal")
        raise InvalidInput(f"unexpected {text!r} at position {position}.", field="query")

    def function(self, name: str) -> Expression:
        if name not in RANGE_FUNCTIONS:
            raise unsupported(f"the function {name}()")
        self.expect("(")
        token = self.peek()
        if token is None:
            raise InvalidInput("unexpected end of the query.", field="query")
        kind, text, position = self.take()
        if kind == "op" and text == "{":
            self.index -= 1
            selector = self.selector(None)
        elif kind == "ident":
            selector = self.selector(text)
        else:
            raise InvalidInput(f"{name}() takes a series selector with a range, e.g. {name}(x[5m]).", field="query")
        following = self.peek()
        if following is None or following[1] != "[":
            raise InvalidInput(f"{name}() needs a range, e.g. {name}(x[5m]).", field="query")
        self.take()
        kind, text, position = self.take()
        if kind == "number" and text.isdigit():
            seconds = float(text)  # Prometheus 3 accepts a bare number of seconds
        elif kind == "duration":
            seconds = parse_duration(text)
        else:
            raise InvalidInput(f"bad range {text!r} at position {position}; use a duration like 5m.", field="query")
        closing = self.take()
        if closing[1].startswith(":"):
            raise unsupported("a subquery")
        if closing[1] != "]":
            raise unsupported(f"{closing[1]!r} in a range")
        if seconds <= 0:
            raise InvalidInput("the range must be positive.", field="query")
        following = self.peek()
        if following is not None and following[1] in ("offset", "@"):
            raise unsupported(f"{following[1]!r} modifier")
        self.expect(")")
        return RangeFunction(name, selector, seconds)

    def selector(self, name: str | None) -> Selector:
        matchers: list[Matcher] = []
        if name is not None:
            if not METRIC_NAME.fullmatch(name):
                raise InvalidInput(f"{name!r} is not a metric name.", field="query")
            matchers.append(Matcher("__name__", "=", name))
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] == "{":
            self.take()
            while True:
                token = self.take()
                if token[0] == "op" and token[1] == "}":
                    break
                if token[0] != "ident" or not LABEL_NAME.fullmatch(token[1]):
                    raise InvalidInput(
                        f"expected a label name at position {token[2]}, found {token[1]!r}.", field="query"
                    )
                label = token[1]
                op_token = self.take()
                if op_token[0] != "op" or op_token[1] not in MATCH_OPS:
                    raise InvalidInput(
                        f"expected one of = != =~ !~ after {label!r}, found {op_token[1]!r}.", field="query"
                    )
                value_token = self.take()
                if value_token[0] != "string":
                    raise InvalidInput(f"the value of {label!r} must be a quoted string.", field="query")
                matchers.append(_matcher(label, op_token[1], _unquote(value_token[1])))
                separator = self.take()
                if separator[1] == "}":
                    break
                if separator[1] != ",":
                    raise InvalidInput(f"expected ',' or '}}' at position {separator[2]}.", field="query")
                if self.peek() is not None and self.peek()[1] == "}":
                    self.take()
                    break
        if name is not None and any(m.label == "__name__" for m in matchers[1:]):
            raise InvalidInput("the metric name is given twice.", field="query")
        if not any(not m.matches("") for m in matchers):
            raise InvalidInput(
                "a selector needs at least one matcher that does not match the empty string.", field="query"
            )
        following = self.peek()
        if following is not None and following[1] in ("offset", "@"):
            raise unsupported(f"{following[1]!r} modifier")
        return Selector(tuple(matchers))


def _matcher(label: str, op: str, value: str) -> Matcher:
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise InvalidInput(f"bad regular expression {value!r} for {label!r}: {exc}.", field="query") from None
    return Matcher(label, op, value, pattern)


def parse(query: str) -> Expression:
    """The query's tree; InvalidInput (field `query`) for what does not parse or is not supported."""
    if not isinstance(query, str):
        raise InvalidInput("must be a string.", field="query")
    return _Parser(query).parse()


def parse_selector(text: str, *, field: str = "selector") -> Selector:
    """A series selector alone (match[] parameters, threshold rules); errors name `field`."""
    try:
        expression = parse(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field) from None
    if not isinstance(expression, Selector):
        raise InvalidInput(f'must be a series selector such as up{{job="node"}}, not {text!r}.', field=field)
    return expression

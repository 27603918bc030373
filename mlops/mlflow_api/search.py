"""MLflow search filters and `order_by`, parsed here (the server does not depend on mlflow) into ORM terms.

Grammar (MLflow's, case-insensitive keywords):

    filter     := clause (AND clause)*
    clause     := identifier comparator value
    identifier := name | attribute.name | tag.<key> | tags.<key>   (a key in `backticks` or "quotes" may hold spaces)
    comparator := = | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
    value      := 'string' | "string" | number | ( 'string', ... )

Tag clauses become `Exists()` subqueries, so a search costs the same number of queries whatever it matches.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from django.db.models import Exists, F, Lookup, Model, OuterRef, Q

from mlops.models import ModelVersionTag, RegisteredModelTag, Stage

# The tag MLflow clients use to tell prompts from models; models lack it, and `!= 'true'` must still match them.
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"


class SearchError(ValueError):
    """A filter, order_by or page token the server cannot use; the message names the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- LIKE / ILIKE without escape characters, case-sensitive LIKE on every database ------------------------------------


def _like_to_glob(pattern: str) -> str:
    """SQLite's LIKE ignores ASCII case; GLOB does not. Translate % and _ and quote GLOB's own wildcards."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(char, char) for char in pattern)


class Like(Lookup):
    """`lhs LIKE pattern` with `%` and `_` as the only wildcards, case-sensitive (as MLflow documents)."""

    lookup_name = "mlflow_like"
    case_sensitive = True

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        operator = "LIKE" if self.case_sensitive else "ILIKE"
        return f"{lhs} {operator} {rhs} ESCAPE ''", [*lhs_params, *rhs_params]

    def as_sqlite(self, compiler, connection) -> tuple[str, list]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        if self.case_sensitive:
            return f"{lhs} GLOB {rhs}", [*lhs_params, *[_like_to_glob(p) for p in rhs_params]]
        return f"{lhs} LIKE {rhs}", [*lhs_params, *rhs_params]


class ILike(Like):
    """`lhs ILIKE pattern`: LIKE ignoring case."""

    lookup_name = "mlflow_ilike"
    case_sensitive = False


# --- Tokens and clauses -----------------------------------------------------------------------------------------------

TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
    | (?P<op>!=|<>|>=|<=|==|=|<|>)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<identifier>(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)(?:\.(?:[A-Za-z0-9_][A-Za-z0-9_.\-]*|`[^`]+`|"[^"]+"))?)
    """,
    re.VERBOSE,
)
KEYWORDS = {"AND", "OR", "NOT", "LIKE", "ILIKE", "IN", "IS", "NULL"}
TAG_ENTITIES = {"tag", "tags"}
ATTRIBUTE_ENTITIES = {"attribute", "attributes", "attr"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int

    @property
    def keyword(self) -> str | None:
        upper = self.text.upper()
        return upper if self.kind == "identifier" and upper in KEYWORDS else None


@dataclass(frozen=True)
class Clause:
    """One comparison: `kind` is "attribute" or "tag"."""

    kind: str
    key: str
    comparator: str
    value: str | int | float | list[str]
    text: str


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = TOKEN_RE.match(text, position)
        if match is None:
            char = text[position]
            if char in "'\"":
                raise SearchError(f"Invalid filter {text!r}: the string starting at position {position} is not closed.")
            if char == "`":
                raise SearchError(f"Invalid filter {text!r}: the backtick at position {position} is not closed.")
            raise SearchError(f"Invalid filter {text!r}: unexpected character {char!r} at position {position}.")
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), position))
        position = match.end()
    return tokens


def _unquote(text: str) -> str:
    quote = text[0]
    inner = text[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\([\\'\"])", r"\1", inner)


def _strip_key(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
        return key[1:-1]
    return key


def _identifier(token: Token, source: str) -> tuple[str, str]:
    """("attribute" | "tag", key) for an identifier token."""
    text = token.text
    if text.startswith("`"):
        return "attribute", text[1:-1]
    entity, dot, key = text.partition(".")
    if not dot:
        return "attribute", entity
    if entity.lower() in TAG_ENTITIES:
        return "tag", _strip_key(key)
    if entity.lower() in ATTRIBUTE_ENTITIES:
        return "attribute", _strip_key(key)
    raise SearchError(
        f"Invalid filter {source!r}: unknown entity type {entity!r} in {text!r}; use an attribute such as name, "
        "or tag.<key> / tags.<key>."
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token | None:
        token = self.peek()
        self.index += 1
        return token

    def fail(self, expected: str, token: Token | None) -> SearchError:
        if token is None:
            return SearchError(f"Invalid filter {self.text!r}: expected {expected} at the end.")
        return SearchError(
            f"Invalid filter {self.text!r}: expected {expected} at position {token.position}, got {token.text!r}."
        )

    def parse(self) -> list[Clause]:
        clauses = [self.clause()]
        while (token := self.take()) is not None:
            if token.keyword == "OR":
                raise SearchError(f"Invalid filter {self.text!r}: OR is not supported; join conditions with AND.")
            if token.keyword != "AND":
                raise self.fail("AND", token)
            clauses.append(self.clause())
        return clauses

    def clause(self) -> Clause:
        start = self.peek()
        token = self.take()
        if token is None or token.kind != "identifier" or token.keyword:
            raise self.fail("an identifier such as name or tags.<key>", token)
        kind, key = _identifier(token, self.text)
        comparator = self.comparator()
        value = self.value(comparator)
        end = self.tokens[self.index - 1]
        text = self.text[start.position : end.position + len(end.text)]
        return Clause(kind, key, comparator, value, text)

    def comparator(self) -> str:
        token = self.take()
        if token is not None and token.kind == "op":
            return {"==": "=", "<>": "!="}.get(token.text, token.text)
        keyword = token.keyword if token is not None else None
        if keyword in ("LIKE", "ILIKE", "IN"):
            return keyword
        if keyword == "NOT":
            following = self.take()
            if following is not None and following.keyword == "IN":
                return "NOT IN"
            raise self.fail("IN after NOT", following)
        if keyword == "IS":
            raise SearchError(f"Invalid filter {self.text!r}: IS NULL / IS NOT NULL are not supported.")
        raise self.fail("a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)", token)

    def value(self, comparator: str) -> str | int | float | list[str]:
        token = self.take()
        if comparator in ("IN", "NOT IN"):
            if token is None or token.kind != "lparen":
                raise self.fail(f"a parenthesised list of strings after {comparator}", token)
            values = []
            while True:
                item = self.take()
                if item is None or item.kind != "string":
                    raise self.fail("a quoted string in the list", item)
                values.append(_unquote(item.text))
                separator = self.take()
                if separator is not None and separator.kind == "rparen":
                    return values
                if separator is None or separator.kind != "comma":
                    raise self.fail("',' or ')'", separator)
        if token is not None and token.kind == "string":
            return _unquote(token.text)
        if token is not None and token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        raise self.fail(f"a quoted value after {comparator}", token)


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of an MLflow filter string (empty for no filter); SearchError names what is wrong."""
    if text is None or not text.strip():
        return []
    return _Parser(text).parse()


# --- Clauses -> Q -----------------------------------------------------------------------------------------------------

STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NUMBER_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")
STAGE_COMPARATORS = ("=", "!=", "IN", "NOT IN")
TAG_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")


@dataclass(frozen=True)
class Attribute:
    field: str
    type: str = "string"  # "string", "number" or "stage"
    lists: bool = False  # whether IN / NOT IN are allowed


MODEL_ATTRIBUTES = {"name": Attribute("name", lists=True)}
VERSION_ATTRIBUTES = {
    "name": Attribute("model__name", lists=True),
    "version_number": Attribute("version", "number"),
    "version": Attribute("version", "number"),
    "run_id": Attribute("run_id", lists=True),
    "source_path": Attribute("source"),
    "current_stage": Attribute("stage", "stage"),
}


def _string_condition(field: str, comparator: str, value: object) -> Q:
    if comparator == "=":
        return Q(**{field: value})
    if comparator == "!=":
        return ~Q(**{field: value})
    if comparator == "LIKE":
        return Q(Like(F(field), value))
    if comparator == "ILIKE":
        return Q(ILike(F(field), value))
    if comparator == "IN":
        return Q(**{f"{field}__in": value})
    return ~Q(**{f"{field}__in": value})


def _number_condition(field: str, comparator: str, value: int) -> Q:
    lookup = {"=": "exact", "!=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[comparator]
    condition = Q(**{f"{field}__{lookup}": value})
    return ~condition if comparator == "!=" else condition


def _attribute_condition(clause: Clause, attributes: dict[str, Attribute]) -> Q:
    attribute = attributes.get(clause.key.lower())
    if attribute is None:
        raise SearchError(
            f"Invalid attribute {clause.key!r} in {clause.text!r}; searchable attributes are "
            f"{', '.join(sorted(attributes))} and tags.<key>."
        )
    allowed = {"string": STRING_COMPARATORS, "number": NUMBER_COMPARATORS, "stage": STAGE_COMPARATORS}[attribute.type]
    if attribute.type == "string" and not attribute.lists:
        allowed = ("=", "!=", "LIKE", "ILIKE")
    if clause.comparator not in allowed:
        raise SearchError(
            f"Invalid comparator {clause.comparator!r} for {clause.key} in {clause.text!r}; use one of "
            f"{', '.join(allowed)}."
        )
    value = clause.value
    if attribute.type == "number":
        if isinstance(value, float) or (isinstance(value, str) and not re.fullmatch(r"-?\d+", value.strip())):
            raise SearchError(f"Invalid value {value!r} in {clause.text!r}: {clause.key} is a whole number.")
        return _number_condition(attribute.field, clause.comparator, int(value))
    if isinstance(value, int | float):
        raise SearchError(f"Invalid value in {clause.text!r}: put the value in quotes, e.g. {clause.key} = 'x'.")
    if attribute.type == "stage":
        try:
            value = [Stage.parse(v).value for v in value] if isinstance(value, list) else Stage.parse(value).value
        except ValueError as exc:
            raise SearchError(f"Invalid value in {clause.text!r}: {exc}.") from None
    return _string_condition(attribute.field, clause.comparator, value)


def _tag_condition(clause: Clause, tag_model: type[Model], owner: str) -> Q:
    if clause.comparator not in TAG_COMPARATORS:
        raise SearchError(
            f"Invalid comparator {clause.comparator!r} for a tag in {clause.text!r}; use one of "
            f"{', '.join(TAG_COMPARATORS)}."
        )
    if not isinstance(clause.value, str):
        raise SearchError(f"Invalid value in {clause.text!r}: a tag value must be a quoted string.")
    tags = tag_model.objects.filter(**{owner: OuterRef("pk")}, key=clause.key)
    condition = Q(Exists(tags.filter(_string_condition("value", clause.comparator, clause.value))))
    # A tag != 'x' matches only objects that have the tag (MLflow's rule), except the prompt marker: plain
    # models never carry it, and the clause the client appends (`!= 'true'`) must keep them.
    if clause.key == IS_PROMPT_TAG and (
        (clause.comparator == "!=" and clause.value.lower() == "true")
        or (clause.comparator == "=" and clause.value.lower() == "false")
    ):
        condition |= ~Q(Exists(tags))
    return condition


def _conditions(clauses: list[Clause], attributes: dict[str, Attribute], tag_model: type[Model], owner: str) -> Q:
    condition = Q()
    for clause in clauses:
        if clause.kind == "tag":
            condition &= _tag_condition(clause, tag_model, owner)
        else:
            condition &= _attribute_condition(clause, attributes)
    return condition


def registered_model_filter(text: str | None) -> Q:
    """A Q over RegisteredModel for an MLflow `search_registered_models` filter."""
    return _conditions(parse_filter(text), MODEL_ATTRIBUTES, RegisteredModelTag, "model")


def model_version_filter(text: str | None) -> Q:
    """A Q over ModelVersion for an MLflow `search_model_versions` filter."""
    return _conditions(parse_filter(text), VERSION_ATTRIBUTES, ModelVersionTag, "version")


# --- order_by and page tokens --------------------------------------------------------------------------------------

MODEL_ORDER_KEYS = {
    "name": "name",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
    "timestamp": "updated_at",
}
VERSION_ORDER_KEYS = {
    "name": "model__name",
    "version_number": "version",
    "version": "version",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}


def ordering(
    order_by: list[str], keys: dict[str, str], tiebreakers: list[str], default: list[str] | None = None
) -> list[str]:
    """Django order_by() terms for MLflow `order_by` items ("name ASC", "last_updated_timestamp DESC").

    `tiebreakers` (e.g. ["name"]) are appended for fields not already used, so the order is total and
    offsets give stable pages.
    """
    terms: list[str] = []
    used: set[str] = set()
    for item in order_by or default or []:
        parts = str(item).replace("`", "").split()
        if not parts or len(parts) > 2:
            raise SearchError(f"Invalid order_by clause {item!r}: use '<key> [ASC|DESC]'.")
        key = parts[0].lower()
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if key.startswith("attribute."):
            key = key.removeprefix("attribute.")
        if key not in keys:
            raise SearchError(f"Invalid order_by key {parts[0]!r}; use one of {', '.join(sorted(keys))}.")
        if direction not in ("ASC", "DESC"):
            raise SearchError(f"Invalid order_by clause {item!r}: the direction must be ASC or DESC.")
        field = keys[key]
        if field in used:
            raise SearchError(f"order_by names {parts[0]!r} twice.")
        used.add(field)
        terms.append(field if direction == "ASC" else f"-{field}")
    for term in tiebreakers:
        if term.lstrip("-") not in used:
            terms.append(term)
    return terms


def page_token(offset: int) -> str:
    """An opaque token for the page that starts at `offset` (MLflow's own form: base64 of {"offset": n})."""
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_offset(token: str | None) -> int:
    if not token:
        return 0
    invalid = SearchError(f"Invalid page_token {token[:60]!r}: pass the next_page_token of a previous search.")
    try:
        offset = json.loads(base64.b64decode(token.encode(), validate=True))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError):
        raise invalid from None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise invalid
    return offset

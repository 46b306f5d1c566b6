"""The compiled schema check agrees with the walk that names the place.

``validate`` answers from a function compiled from the schema
(app/web/checker.py) and walks the value (``_explain``) only to name where a
refused body breaks it; the two must never disagree, or a valid body would
be refused, or an invalid one let through. Values are drawn near each
schema of the app: its own field names (and a stray one), numbers at its
bounds, strings at its lengths, lone surrogates, wrong types.
"""
import functools

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from app import config
from app.errors import JobmasterError
from app.web import validation
from app.web.checker import compile_schema
from app.web.schemas import Schemas

SCHEMAS = Schemas(config.load({"REDIS_URL": "redis://127.0.0.1:1/0"}))
REQUESTS = sorted(name for name in vars(SCHEMAS) if name.endswith(("_REQUEST", "_CREATE")))

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 60, 2 ** 60),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=5), st.just("\ud800"), st.just("x" * 201))


def _near(schema, depth=0, lean=False):
    """Values that mostly match ``schema``, sometimes just miss it (``lean``:
    never a value of any shape at all)."""
    anything = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                            max_leaves=5)
    if depth > 4:
        return anything
    kind = schema.get("type")
    options = [] if lean and (kind or schema.get("anyOf")) else [anything]
    bounds = [schema[k] for k in ("minimum", "maximum", "minLength", "maxLength",
                                  "minItems", "maxItems") if k in schema]
    if kind in ("integer", "number"):
        options.append(st.sampled_from([b + d for b in bounds for d in (-1, 0, 1)] or [0]))
        options.append(st.integers(-10, 10))
        if kind == "number":
            options.append(st.sampled_from([b + d for b in bounds for d in (-0.0005, 0.0005)] or [0.5]))
    elif kind == "string":
        lengths = [max(0, b + d) for b in bounds for d in (-1, 0, 1)] or [1]
        options.append(st.sampled_from(lengths).map(lambda n: "a" * n))
        low = schema.get("minLength", 0)
        options.append(st.integers(low, max(low, min(schema.get("maxLength", 30), 30)))
                       .map(lambda n: "a" * n))
        if "enum" in schema:
            options.append(st.sampled_from(schema["enum"]))
        if schema.get("pattern"):
            options.append(st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) < 300))
    elif kind == "boolean":
        options.append(st.booleans())
    elif kind == "array":
        item = _near(schema.get("items") or {}, depth + 1, lean)
        high = min(schema.get("maxItems", 4), 4) + 1
        options.append(st.lists(item, max_size=high))
    elif kind == "object":
        props = schema.get("properties", {})
        fields = {name: _near(sub, depth + 1) for name, sub in props.items()}
        close = {name: _near(sub, depth + 1, lean=True) for name, sub in props.items()}
        extra = st.dictionaries(st.sampled_from(["stray", *props]), anything, max_size=1)
        options.append(st.fixed_dictionaries({}, optional=fields))
        required = schema.get("required", ())
        whole = st.fixed_dictionaries(
            {name: close.get(name, anything) for name in required},
            optional={name: f for name, f in close.items() if name not in required})
        options.append(whole)
        for sub in schema.get("anyOf", ()):  # one of its forms on top
            options.append(st.tuples(whole, _near(sub, depth + 1)).map(
                lambda pair: {**pair[0], **pair[1]} if isinstance(pair[1], dict) else pair[1]))
        options.append(st.tuples(st.fixed_dictionaries({}, optional=fields), extra)
                       .map(lambda pair: {**pair[0], **pair[1]}))
    for sub in schema.get("anyOf", ()):
        options.append(_near(sub, depth + 1))
    if schema.get("nullable"):
        options.append(st.none())
    return st.one_of(options)


@functools.cache
def _strategy(name):
    return _near(getattr(SCHEMAS, name))


def _explained(value, schema):
    try:
        validation._explain(value, schema, "body")
    except JobmasterError:
        return False
    return True


@pytest.mark.parametrize("name", REQUESTS)
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_compiled_check_agrees_with_the_walk(name, data):
    schema = getattr(SCHEMAS, name)
    value = data.draw(_strategy(name))
    assert validation._checker(schema)(value) == _explained(value, schema), value


def test_a_result_with_a_stray_field_or_a_bool_id_is_refused_and_a_plain_one_passes():
    check = compile_schema(SCHEMAS.COMPLETE_REQUEST)
    assert check({"results": [{"id": 3, "ok": True, "result": {"x": [1]}}], "next": {}})
    assert not check({"results": [{"id": 3, "ok": True, "extra": 1}]})
    assert not check({"results": [{"id": True, "ok": True}]})
    assert not check({"results": [{"id": 3, "ok": 1}]})
    assert not check({"results": [{"ok": True}]})
    assert not check({"next": {"max_tasks": 0}})
    assert check({"next": {"max_tasks": None}})

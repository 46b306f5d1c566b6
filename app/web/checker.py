"""A request schema compiled into one Python function that answers whether a
value matches it.

Every complete of 100 results is checked against the result schema 100
times, so the check is on the hottest path there is. Walking the schema per
value (a closure per field, a loop over required names and over properties)
cost ~116 bytecodes per result; straight-line code written from the schema
once, with its constants bound as globals, costs ~52 (docs/bench/NOTES.md,
"Wave 2, session 4"). The meaning is the schema's, as
:func:`app.web.validation.validate` reads it (the OpenAPI 3.0 dialect:
``nullable``, a boolean ``exclusiveMinimum``); ``tests/test_validation.py``
holds the compiled function to agree with the walk that names the place.
"""
import re

from ..domain.codec import encodable


def is_number(v):
    """A JSON number (a bool is not one, though Python's bool is an int)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compile_schema(schema):
    """A predicate that is true exactly when ``value`` matches ``schema``."""
    return _Writer().function(schema)


class _Writer:
    """Writes the source of one function; constants go into its globals."""

    def __init__(self):
        self.lines = []
        self.env = {"_encodable": encodable, "_is_number": is_number}
        self.names = 0

    def function(self, schema):
        self.emit(schema, "v0", 1)
        source = "def check(v0):\n%s    return True\n" % "".join(self.lines)
        exec(compile(source, "<schema check>", "exec"), self.env)  # noqa: S102 (our own text)
        return self.env["check"]

    def const(self, value):
        self.names += 1
        name = "_c%d" % self.names
        self.env[name] = value
        return name

    def local(self):
        self.names += 1
        return "v%d" % self.names

    def line(self, depth, text):
        self.lines.append("    " * depth + text + "\n")

    def fail_if(self, depth, condition):
        self.line(depth, "if %s: return False" % condition)

    def emit(self, schema, v, depth):
        """Lines (at ``depth``) that return False unless ``v`` matches."""
        kind = schema.get("type")
        alternatives = schema.get("anyOf", ())
        if kind is None and not alternatives:
            return  # anything goes (an enum without a type is not enforced either)
        if schema.get("nullable", False):
            self.line(depth, "if %s is not None:" % v)
            depth += 1
        if "enum" in schema:
            self.fail_if(depth, "%s not in %s" % (v, self.const(schema["enum"])))
        if kind is not None:
            getattr(self, "_" + kind)(schema, v, depth)
        if alternatives:
            calls = " or ".join("%s(%s)" % (self.const(compile_schema(sub)), v)
                                for sub in alternatives)
            self.fail_if(depth, "not (%s)" % calls)

    def _bounds(self, schema, v, depth, low_key, high_key, measure="%s"):
        value = measure % v
        tests = ["%s %s %s" % (value, op, self.const(schema[key]))
                 for key, op in ((low_key, "<"), (high_key, ">")) if key in schema]
        if tests:
            self.fail_if(depth, " or ".join(tests))

    def _integer(self, schema, v, depth):
        self.fail_if(depth, "type(%s) is not int" % v)
        self._numeric(schema, v, depth)

    def _number(self, schema, v, depth):
        self.fail_if(depth, "not _is_number(%s)" % v)
        self._numeric(schema, v, depth)

    def _numeric(self, schema, v, depth):
        self._bounds(schema, v, depth, "minimum", "maximum")
        if schema.get("exclusiveMinimum") is True:  # OpenAPI 3.0: a flag on minimum
            self.fail_if(depth, "%s == %s" % (v, self.const(schema["minimum"])))

    def _boolean(self, schema, v, depth):
        self.fail_if(depth, "%s is not True and %s is not False" % (v, v))

    def _string(self, schema, v, depth):
        self.fail_if(depth, "type(%s) is not str" % v)
        self._bounds(schema, v, depth, "minLength", "maxLength", "len(%s)")
        # (encodable's own ASCII test, inlined: most strings stop there, without a call)
        self.fail_if(depth, "not %s.isascii() and not _encodable(%s)" % (v, v))
        if schema.get("pattern"):
            pattern = self.const(re.compile(schema["pattern"]))
            self.fail_if(depth, "%s.search(%s) is None" % (pattern, v))

    def _array(self, schema, v, depth):
        self.fail_if(depth, "type(%s) is not list" % v)
        self._bounds(schema, v, depth, "minItems", "maxItems", "len(%s)")
        item = schema.get("items")
        if item and (item.get("type") is not None or item.get("anyOf")):
            x = self.local()
            self.line(depth, "for %s in %s:" % (x, v))
            self.emit(item, x, depth + 1)

    def _object(self, schema, v, depth):
        self.fail_if(depth, "type(%s) is not dict" % v)
        self._bounds(schema, v, depth, "minProperties", "maxProperties", "len(%s)")
        required = schema.get("required", ())
        if required:
            self.fail_if(depth, " or ".join("%r not in %s" % (name, v) for name in required))
        if not schema.get("additionalProperties", True):
            optional = [name for name in schema["properties"] if name not in required]
            if len(optional) <= 4 and set(required) <= set(schema["properties"]):
                # No unknown field: the fields it has are the required ones
                # and the optional ones present. A few dict look-ups cost
                # less than a set walking the dict (~200 instructions a result).
                count = " + ".join([str(len(required))] + ["(%r in %s)" % (name, v)
                                                          for name in optional])
                self.fail_if(depth, "len(%s) != %s" % (v, count))
            else:
                self.fail_if(depth, "not %s.issuperset(%s)"
                             % (self.const(frozenset(schema["properties"])), v))
        for name, sub in schema.get("properties", {}).items():
            if sub.get("type") is None and not sub.get("anyOf"):
                continue  # accepts anything: no look-up at all
            x = self.local()
            if name in required:
                self.line(depth, "%s = %s[%r]" % (x, v, name))
                self.emit(sub, x, depth)
            else:
                self.line(depth, "if %r in %s:" % (name, v))
                self.line(depth + 1, "%s = %s[%r]" % (x, v, name))
                self.emit(sub, x, depth + 1)

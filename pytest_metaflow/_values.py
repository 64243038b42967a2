"""Artifact values as readable, lossless text, and the comparison of two such texts.

A value is written as a Python expression a reviewer can read in a diff:
literals as ``repr`` (floats round-trip exactly), containers one item per line
when long, and everything else as a call naming its kind with keyword fields::

    ndarray(dtype='float64', shape=(2,), values=[0.5, 1.25])
    DataFrame(index=RangeIndex(start=0, stop=2, step=1),
              columns={'a': column(dtype='int64', values=[1, 2])})

The text is never executed: :func:`parse` reads it back with :mod:`ast` into a
tree of plain Python values and :class:`Call` nodes, and :func:`compare` walks
two trees, applying ``rtol``/``atol`` to floats and naming the first elements
that differ. numpy and pandas are imported only when a value is one of theirs.

Values with more than :data:`INLINE_LIMIT` elements (numpy arrays, pandas
objects) are written by the caller to a side file; here they are summarised
(:class:`Large`) with a checksum over their full text.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import decimal
import enum
import fractions
import hashlib
import math
import pathlib
import uuid
from typing import Any, Callable

# numpy arrays and pandas objects with more elements than this go to a side file.
INLINE_LIMIT = 1000
WIDTH = 88  # a container longer than this is written one item per line
MAX_DIFFS = 5  # differing elements listed per artifact


class SnapshotValueError(TypeError):
    """An artifact value that cannot be written to a snapshot."""


@dataclasses.dataclass(frozen=True)
class Call:
    """A parsed ``name(arg, ..., key=value, ...)``."""

    name: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.kwargs).get(key, default)


@dataclasses.dataclass
class Large:
    """A value too large to inline: its kind, summary fields and full text."""

    kind: str  # "npy" or "pkl": how the side file is written
    value: Any
    summary: dict[str, Any]
    sha256: str


# --- writing ----------------------------------------------------------------


def _qualname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def _call(name: str, fields: list[tuple[str, str]], args: tuple[str, ...] = ()) -> str:
    parts = list(args) + [f"{k}={v}" for k, v in fields]
    one_line = f"{name}({', '.join(parts)})"
    if len(one_line) <= WIDTH and "\n" not in one_line:
        return one_line
    body = ",\n".join(_indent(p) for p in parts)
    return f"{name}(\n{body},\n)"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _seq(open_: str, close: str, items: list[str], trailing_comma: bool = False) -> str:
    one_line = open_ + ", ".join(items) + ("," if trailing_comma else "") + close
    if len(one_line) <= WIDTH and "\n" not in one_line:
        return one_line
    return open_ + "\n" + ",\n".join(_indent(i) for i in items) + ",\n" + close


def _float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def _is_numpy(value: Any, name: str) -> bool:
    module = type(value).__module__
    return module.startswith("numpy") and type(value).__name__ == name


def _is_pandas(value: Any) -> bool:
    return type(value).__module__.startswith("pandas")


class Writer:
    """Turns a value into text; large numpy/pandas values become :class:`Large` summaries.

    ``large`` collects the side-file values met while writing (sha256 -> Large).
    """

    def __init__(self, inline_limit: int = INLINE_LIMIT) -> None:
        self.inline_limit = inline_limit
        self.large: dict[str, Large] = {}
        self._active: set[int] = set()

    def write(self, value: Any, path: str) -> str:
        if id(value) in self._active:
            raise SnapshotValueError(f"{path}: the value contains itself (a reference cycle)")
        container = isinstance(value, (list, tuple, dict, set, frozenset)) or hasattr(value, "__dict__")
        if container:
            self._active.add(id(value))
        try:
            return self._write(value, path)
        finally:
            self._active.discard(id(value))

    def _write(self, value: Any, path: str) -> str:
        if value is None or type(value) in (bool, int, str, bytes):
            return repr(value)
        if type(value) is float:
            return _float(value)
        if type(value) is complex:
            return f"complex({_float(value.real)}, {_float(value.imag)})"
        if type(value) is list:
            return _seq("[", "]", [self.write(v, f"{path}[{i}]") for i, v in enumerate(value)])
        if type(value) is tuple:
            items = [self.write(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return _seq("(", ")", items, trailing_comma=len(items) == 1)
        if type(value) is dict:
            items = [f"{self.write(k, f'{path} key')}: {self.write(v, f'{path}[{k!r}]')}" for k, v in value.items()]
            return _seq("{", "}", items)
        if type(value) in (set, frozenset):
            items = sorted(self.write(v, f"{path} item") for v in value)
            inner = _seq("[", "]", items)
            return f"{type(value).__name__}({inner})"
        if _is_numpy(value, "ndarray"):
            return self._ndarray(value, path)
        if type(value).__module__ == "numpy" and hasattr(value, "dtype") and hasattr(value, "item"):
            return f"{type(value).__name__}({self.write(value.item(), path)})"  # numpy scalar
        if _is_pandas(value):
            return self._pandas(value, path)
        if isinstance(value, enum.Enum):
            return _call("enum", [], (repr(_qualname(value)), repr(value.name)))
        if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
            return (
                f"{type(value).__name__}({value.isoformat()!r})"
                if not isinstance(value, datetime.timedelta)
                else f"timedelta({value.days!r}, {value.seconds!r}, {value.microseconds!r})"
            )
        if isinstance(value, (decimal.Decimal, fractions.Fraction, uuid.UUID, pathlib.PurePath)):
            return f"{type(value).__name__}({str(value)!r})"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = [
                (f.name, self.write(getattr(value, f.name), f"{path}.{f.name}")) for f in dataclasses.fields(value)
            ]
            return _call(_qualname(value), fields)
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
            fields = [(f, self.write(getattr(value, f), f"{path}.{f}")) for f in value._fields]
            return _call(_qualname(value), fields)
        if isinstance(value, (list, tuple, dict, set, frozenset, int, float, str, bytes)):
            # A subclass of a builtin: its builtin content under its class name.
            base: Any = next(
                b for b in (int, float, str, bytes, list, tuple, dict, set, frozenset) if isinstance(value, b)
            )
            return _call(_qualname(value), [], (self.write(base(value), path),))
        return self._object(value, path)

    def _object(self, value: Any, path: str) -> str:
        # Objects of the user's classes: class name and instance attributes
        # (``__dict__``, then ``__slots__``); documented in the README.
        state: dict[str, Any] | None = None
        if hasattr(value, "__dict__") and not callable(value) and not isinstance(value, type):
            state = dict(vars(value))
        else:
            slots = [s for c in type(value).__mro__ for s in getattr(c, "__slots__", ())]
            if slots and not callable(value):
                state = {s: getattr(value, s) for s in slots if hasattr(value, s)}
        if state is None:
            raise SnapshotValueError(
                f"{path}: cannot write a {_qualname(value)} to a snapshot (not data: no attributes to record); "
                "pass names=[...] without it, or store plain data in the artifact"
            )
        fields = [(k, self.write(v, f"{path}.{k}")) for k, v in sorted(state.items()) if not k.startswith("__")]
        return _call(_qualname(value), fields)

    # numpy and pandas ------------------------------------------------------

    def _values(self, values: Any, path: str) -> str:
        return self.write(values, path)

    def _ndarray(self, arr: Any, path: str) -> str:
        text = self._ndarray_inline(arr, path)
        if arr.size > self.inline_limit:
            return self._large("npy", arr, text, path, dtype=repr(str(arr.dtype)), shape=repr(tuple(arr.shape)))
        return text

    def _ndarray_inline(self, arr: Any, path: str) -> str:
        kind = arr.dtype.kind
        if kind in "Mm":  # datetime64/timedelta64: tolist() loses the unit
            values: Any = arr.astype(str).tolist()
        elif kind == "V":  # structured: a list of tuples
            values = arr.tolist()
            dtype = repr(arr.dtype.descr)
            return _call(
                "ndarray", [("dtype", dtype), ("shape", repr(tuple(arr.shape))), ("values", self.write(values, path))]
            )
        else:
            values = arr.tolist()
        return _call(
            "ndarray",
            [("dtype", repr(str(arr.dtype))), ("shape", repr(tuple(arr.shape))), ("values", self.write(values, path))],
        )

    def _index(self, index: Any, path: str) -> str:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        if isinstance(index, pd.RangeIndex):
            fields = [("start", repr(index.start)), ("stop", repr(index.stop)), ("step", repr(index.step))]
            if index.name is not None:
                fields.append(("name", self.write(index.name, path)))
            return _call("RangeIndex", fields)
        if isinstance(index, pd.MultiIndex):
            return _call(
                "MultiIndex",
                [("names", self.write(list(index.names), path)), ("values", self.write(list(index), f"{path}.index"))],
            )
        fields = [("dtype", repr(str(index.dtype))), ("values", self.write(index.tolist(), f"{path}.index"))]
        if index.name is not None:
            fields.append(("name", self.write(index.name, path)))
        return _call("Index", fields)

    def _column(self, series: Any, path: str) -> str:
        return _call("column", [("dtype", repr(str(series.dtype))), ("values", self.write(series.tolist(), path))])

    def _pandas(self, value: Any, path: str) -> str:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        if isinstance(value, pd.DataFrame):
            names = list(value.columns)
            if len(set(map(repr, names))) == len(names):
                cols = [
                    f"{self.write(c, path)}: {self._column(value.iloc[:, i], f'{path}[{c!r}]')}"
                    for i, c in enumerate(names)
                ]
                columns = _seq("{", "}", cols)
            else:  # duplicate column names: a list of pairs keeps them all
                cols = [
                    f"({self.write(c, path)}, {self._column(value.iloc[:, i], f'{path}[{c!r}]')})"
                    for i, c in enumerate(names)
                ]
                columns = _seq("[", "]", cols)
            text = _call("DataFrame", [("index", self._index(value.index, path)), ("columns", columns)])
            if value.size > self.inline_limit:
                return self._large("pkl", value, text, path, shape=repr(value.shape), columns=self.write(names, path))
            return text
        if isinstance(value, pd.Series):
            fields = [
                ("name", self.write(value.name, path)),
                ("dtype", repr(str(value.dtype))),
                ("index", self._index(value.index, path)),
                ("values", self.write(value.tolist(), path)),
            ]
            text = _call("Series", fields)
            if value.size > self.inline_limit:
                return self._large("pkl", value, text, path, shape=repr(value.shape), dtype=repr(str(value.dtype)))
            return text
        if isinstance(value, pd.Index):
            return self._index(value, path)
        if isinstance(value, pd.Timestamp):
            return f"Timestamp({value.isoformat()!r})" + ("" if value.tz is None else "")
        if isinstance(value, pd.Timedelta):
            return f"Timedelta({value.isoformat()!r})"
        if value is pd.NaT:
            return "NaT"
        if value is pd.NA:
            return "NA"
        if isinstance(value, pd.Categorical):
            return _call(
                "Categorical",
                [("categories", self.write(list(value.categories), path)), ("values", self.write(list(value), path))],
            )
        return self._object(value, path)

    def _large(self, kind: str, value: Any, text: str, path: str, **fields: str) -> str:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        summary = self._summary(value)
        self.large[digest] = Large(kind=kind, value=value, summary=summary, sha256=digest)
        items = list(fields.items()) + [(k, self.write(v, path)) for k, v in summary.items()]
        items.append(("sha256", repr(digest)))
        items.append(("file", repr(side_file_name(digest, kind))))
        return _call(f"large_{type(value).__name__}", items)

    @staticmethod
    def _summary(value: Any) -> dict[str, Any]:
        import numpy as np

        flat = np.asarray(value).ravel()
        summary: dict[str, Any] = {"head": [v.item() if hasattr(v, "item") else v for v in flat[:5]]}
        if flat.dtype.kind in "iufb" and flat.size:
            with np.errstate(all="ignore"):
                summary.update(min=np.nanmin(flat).item(), max=np.nanmax(flat).item(), mean=float(np.nanmean(flat)))
        return summary


def side_file_name(digest: str, kind: str) -> str:
    """Name of the side file holding a large value: content-addressed."""
    return f"{digest[:20]}.{kind}"


def write_value(value: Any, path: str, inline_limit: int = INLINE_LIMIT) -> tuple[str, dict[str, Large]]:
    """``(text, large values met)`` for one artifact value; ``path`` names it in errors."""
    writer = Writer(inline_limit)
    return writer.write(value, path), writer.large


def full_text(value: Any) -> str:
    """The inline text of a value, whatever its size (what a side file's checksum covers)."""
    return Writer(inline_limit=2**62).write(value, "value")


# --- reading ----------------------------------------------------------------

_NAMES = {"nan": math.nan, "inf": math.inf, "True": True, "False": False, "None": None}


def parse(text: str) -> Any:
    """The tree of a value's text (never executes it)."""
    return _tree(ast.parse(text.strip(), mode="eval").body)


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    raise ValueError(f"unexpected expression {ast.dump(node)}")


def _tree(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _NAMES.get(node.id, Call(node.id, (), ()))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _tree(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.List):
        return [_tree(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_tree(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {_hashable(_tree(k)): _tree(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Call):
        return Call(
            _name(node.func),
            tuple(_tree(a) for a in node.args),
            tuple((k.arg or "**", _tree(k.value)) for k in node.keywords),
        )
    if isinstance(node, ast.Attribute):
        return Call(_name(node), (), ())
    raise ValueError(f"unexpected expression in a snapshot: {ast.dump(node)}")


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    return value


# --- comparing --------------------------------------------------------------


@dataclasses.dataclass
class Tolerance:
    rtol: float | None = None
    atol: float | None = None

    @property
    def exact(self) -> bool:
        return not self.rtol and not self.atol

    def close(self, a: float, b: float) -> bool:
        if math.isnan(a) and math.isnan(b):
            return True
        if self.exact:
            return a == b
        return math.isclose(a, b, rel_tol=self.rtol or 0.0, abs_tol=self.atol or 0.0)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def compare(old: Any, new: Any, tol: Tolerance, path: str, out: list[str], load: Callable[[Call], Any]) -> None:
    """Append to ``out`` a line per difference between two trees (at most :data:`MAX_DIFFS` + 1)."""
    if len(out) > MAX_DIFFS:
        return
    if _is_num(old) and _is_num(new) and (isinstance(old, float) or isinstance(new, float)):
        if not tol.close(float(old), float(new)):
            out.append(f"{path}: {_short(old)} -> {_short(new)}{_delta(old, new)}")
        return
    if (
        isinstance(old, Call)
        and isinstance(new, Call)
        and old.name.startswith("large_")
        and new.name.startswith("large_")
    ):
        if old.get("sha256") == new.get("sha256"):
            return
        if old.get("shape") != new.get("shape"):
            out.append(f"{path}: shape {old.get('shape')} -> {new.get('shape')}")
            return
        compare(load(old), load(new), tol, path, out, load)
        return
    if type(old) is not type(new):
        out.append(f"{path}: {_short(old)} -> {_short(new)}")
        return
    if isinstance(old, (list, tuple)):
        if len(old) != len(new):
            out.append(f"{path}: length {len(old)} -> {len(new)}")
            return
        for i, (a, b) in enumerate(zip(old, new)):
            compare(a, b, tol, f"{path}[{i}]", out, load)
        return
    if isinstance(old, dict):
        if old.keys() != new.keys():
            gone, added = [k for k in old if k not in new], [k for k in new if k not in old]
            out.append(
                f"{path}: keys" + (f" removed {gone!r}" if gone else "") + (f" added {added!r}" if added else "")
            )
        for k in old:
            if k in new:
                compare(old[k], new[k], tol, f"{path}[{k!r}]", out, load)
        return
    if isinstance(old, Call):
        if old.name != new.name or len(old.args) != len(new.args):
            out.append(f"{path}: {_short(old)} -> {_short(new)}")
            return
        for i, (a, b) in enumerate(zip(old.args, new.args)):
            compare(a, b, tol, path if len(old.args) == 1 else f"{path}<arg {i}>", out, load)
        olds, news = dict(old.kwargs), dict(new.kwargs)
        for key in list(olds) + [k for k in news if k not in olds]:
            if key not in olds or key not in news:
                out.append(f"{path}.{key}: {'added' if key not in olds else 'removed'}")
                continue
            compare(olds[key], news[key], tol, _sub(old.name, path, key), out, load)
        return
    if old != new:
        out.append(f"{path}: {_short(old)} -> {_short(new)}")


def _sub(kind: str, path: str, key: str) -> str:
    # Where a reader looks: an array's elements are indexed directly, a frame's
    # columns by name; other fields as attributes.
    if key == "values":
        return path
    if kind == "DataFrame" and key == "columns":
        return path
    if key == "index" and kind in ("DataFrame", "Series"):
        return f"{path}.index"
    return f"{path}.{key}"


def _short(value: Any, limit: int = 60) -> str:
    text = _render(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(value: Any) -> str:
    if isinstance(value, Call):
        inner = [_render(a) for a in value.args] + [f"{k}={_render(v)}" for k, v in value.kwargs]
        return f"{value.name}({', '.join(inner)})"
    if isinstance(value, float):
        return _float(value)
    return repr(value)


def _delta(old: Any, new: Any) -> str:
    try:
        diff = float(new) - float(old)
    except (TypeError, ValueError):
        return ""
    if math.isnan(diff) or diff == 0:
        return ""
    rel = abs(diff) / abs(float(old)) if float(old) else math.inf
    return f" (diff {diff:+.3g}" + (f", rel {rel:.3g})" if math.isfinite(rel) else ")")

"""Is an artifact equal to what the test expects? ``==``, ``pytest.approx``, numpy, pandas.

``difference(expected, actual)`` returns ``None`` when they are equal, else a
short text saying where they differ. numpy and pandas are never imported here:
a value of one of their types means that library is loaded already
(``sys.modules``), so loading the plugin costs nothing.

Big arrays stay cheap: the equal case is decided slice by slice (temporaries
of ``_CHUNK`` elements, not of the array's size); the libraries' own testing
functions, which allocate whole-array temporaries, only run to word a failure.
"""

from __future__ import annotations

import math
import reprlib
import sys
from collections.abc import Iterator
from typing import Any

_CHUNK = 1 << 20  # elements per slice: a few MB of temporaries whatever the array's size
_MAX_LINES = 25  # of a library's failure message
_BIG = 4 * _CHUNK  # elements: above, a failure is worded from slice-by-slice counts, not numpy.testing
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 200
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 20


class Tolerance:
    """``rtol``/``atol`` as given to ``assert_artifacts``; both ``None``: exact comparison."""

    def __init__(self, rtol: float | None = None, atol: float | None = None) -> None:
        for name, value in (("rtol", rtol), ("atol", atol)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise TypeError(f"{name} must be a number >= 0, got {value!r}")
        self.active = rtol is not None or atol is not None
        # Either one given: the other one is 0, so `atol=1e-3` alone means just that.
        self.rtol = float(rtol or 0.0)
        self.atol = float(atol or 0.0)

    def __repr__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}"


def _library(value: Any) -> Any | None:
    """numpy or pandas module when ``value`` is one of their objects (already imported), else None."""
    root = type(value).__module__.partition(".")[0]
    return sys.modules.get(root) if root in ("numpy", "pandas") else None


def _short(value: Any) -> str:
    return _repr.repr(value)


def _item(value: Any) -> str:
    """``2.5`` rather than ``np.float64(2.5)`` for a numpy/pandas scalar."""
    item = getattr(value, "item", None)
    if _library(value) is not None and callable(item):
        try:
            return repr(item())
        except Exception:  # not a scalar after all
            pass
    return _short(value)


def _cap(text: str) -> str:
    # pandas prints up to 100 values per line: keep the start of long lines
    lines = [line if len(line) <= 300 else line[:300] + " ..." for line in text.strip("\n").splitlines()]
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES] + [f"[... {len(lines) - _MAX_LINES} more lines]"]
    return "\n".join(lines)


def _block(head: str, text: str) -> str:
    return head + "\n" + "\n".join("    " + line for line in _cap(text).splitlines())


def difference(expected: Any, actual: Any, tol: Tolerance | None = None) -> str | None:
    """``None`` when ``actual`` matches ``expected``, else a short description of the difference."""
    tol = tol or Tolerance()
    if _is_approx(expected):
        if type(expected).__name__ == "ApproxNumpy":
            return _approx_array(expected, actual)
        return None if expected == actual else f"expected {_short(expected)}, got {_short(actual)}"
    pd = _library(expected) or _library(actual)
    if pd is not None and pd.__name__ == "pandas" and _is_pandas(pd, expected, actual):
        return _pandas(pd, expected, actual, tol)
    np = sys.modules.get("numpy")
    if np is not None and (isinstance(expected, np.ndarray) or isinstance(actual, np.ndarray)):
        return _numpy(np, expected, actual, tol)
    if tol.active and _is_number(expected) and _is_number(actual):
        if _close(float(actual), float(expected), tol):
            return None
        return f"expected {expected!r} ({tol}), got {actual!r}: off by {abs(actual - expected):g}"
    try:
        equal = expected == actual
        plain = isinstance(equal, bool) or (np is not None and isinstance(equal, np.bool_))
    except Exception:  # e.g. "truth value of an array is ambiguous" inside containers
        equal, plain = None, False
    if plain and equal and not tol.active:
        return None
    if (not plain or tol.active) and _same_container(expected, actual):
        return _container(expected, actual, tol)
    if plain:
        return None if equal else f"expected {_short(expected)}, got {_short(actual)}"
    # Something with its own notion of equality (an `equals` method, as pandas,
    # polars and xarray objects have), or an `==` that answers elementwise.
    for obj, other in ((actual, expected), (expected, actual)):
        method = getattr(obj, "equals", None)
        if callable(method):
            try:
                if method(other):
                    return None
                return f"expected {_short(expected)}, got {_short(actual)} ({type(obj).__name__}.equals is False)"
            except Exception:
                pass
    if equal is not None and callable(getattr(equal, "all", None)):
        try:
            if bool(equal.all()):
                return None
            return f"expected {_short(expected)}, got {_short(actual)}"
        except Exception:
            pass
    return f"cannot compare {type(actual).__name__} with expected {type(expected).__name__}: {_short(expected)}"


def _is_approx(value: Any) -> bool:
    return type(value).__module__.startswith("_pytest") and hasattr(value, "expected") and hasattr(value, "rel")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.number) and not isinstance(value, np.complexfloating)


def _close(actual: float, expected: float, tol: Tolerance) -> bool:
    # numpy.isclose's rule, NaN equal to NaN like numpy.testing.assert_allclose.
    if math.isnan(actual) and math.isnan(expected):
        return True
    return actual == expected or abs(actual - expected) <= tol.atol + tol.rtol * abs(expected)


def _same_container(expected: Any, actual: Any) -> bool:
    for kind in (dict, list, tuple):
        if isinstance(expected, kind) and isinstance(actual, kind):
            return True
    return False


def _container(expected: Any, actual: Any, tol: Tolerance) -> str | None:
    """Element by element, naming the first differing key or index."""
    if isinstance(expected, dict):
        if set(expected) != set(actual):
            missing, extra = (
                sorted(map(repr, set(expected) - set(actual))),
                sorted(map(repr, set(actual) - set(expected))),
            )
            return f"keys differ: missing {', '.join(missing) or 'none'}; unexpected {', '.join(extra) or 'none'}"
        pairs: list[tuple[str, Any, Any]] = [(f"[{k!r}]", expected[k], actual[k]) for k in expected]
    else:
        if len(expected) != len(actual):
            return f"expected {_short(expected)}, got {_short(actual)} (length {len(expected)} vs {len(actual)})"
        pairs = [(f"[{i}]", e, a) for i, (e, a) in enumerate(zip(expected, actual))]
    for where, e, a in pairs:
        diff = difference(e, a, tol)
        if diff is not None:
            return f"at {where}: {diff}"
    return None


# -- numpy ----------------------------------------------------------------------


def _blocks(np: Any, *arrays: Any) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """Slices along the first axis (views, no copies) of about ``_CHUNK`` elements each."""
    first = arrays[0]
    if first.ndim == 0 or first.size <= _CHUNK:
        yield 0, arrays
        return
    rows = max(1, _CHUNK // max(1, first.size // first.shape[0]))
    for start in range(0, first.shape[0], rows):
        yield start, tuple(a[start : start + rows] for a in arrays)


def _first_mismatch(
    np: Any, shape: tuple[int, ...], start: int, block_shape: tuple[int, ...], ok: Any
) -> tuple[int, ...]:
    flat = int(np.flatnonzero(~ok)[0])
    index = np.unravel_index(flat, block_shape) if block_shape else ()
    return tuple(int(i) for i in ((index[0] + start,) + tuple(index[1:]) if index else ()))


def _numpy(np: Any, expected: Any, actual: Any, tol: Tolerance) -> str | None:
    strict = isinstance(expected, np.ndarray) and not tol.active
    if not isinstance(actual, np.ndarray):
        return f"expected an array {_short(expected)}, got {type(actual).__name__}: {_short(actual)}"
    want = expected if isinstance(expected, np.ndarray) else np.asarray(expected)
    if want.shape != actual.shape:
        return f"shape mismatch: expected {want.shape}, got {actual.shape} (dtype {actual.dtype})"
    if strict and want.dtype != actual.dtype:
        return f"dtype mismatch: expected {want.dtype}, got {actual.dtype} (shape {actual.shape})"
    numeric = want.dtype.kind in "biufc" and actual.dtype.kind in "biufc"
    first: tuple[int, ...] | None = None
    if numeric:
        bad, worst = 0, 0.0
        shown: list[str] = []
        for start, (a, e) in _blocks(np, actual, want):
            with np.errstate(invalid="ignore", over="ignore"):
                if tol.active:
                    ok = np.isclose(a, e, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
                else:
                    ok = (a == e) | (np.isnan(a) & np.isnan(e)) if want.dtype.kind in "fc" else a == e
                if ok.all():
                    continue
                if first is None:
                    first = _first_mismatch(np, actual.shape, start, a.shape, ok)
                if actual.size <= _BIG:
                    break  # numpy.testing words it below
                bad += int(ok.size - np.count_nonzero(ok))
                if want.dtype.kind != "c":
                    off = np.abs(a.astype("float64", copy=False) - e.astype("float64", copy=False))
                    worst = max(worst, float(np.nanmax(np.where(ok, 0.0, off))))
                for flat in np.flatnonzero(~ok)[: 5 - len(shown)]:
                    index = tuple(int(i) for i in np.unravel_index(int(flat), a.shape))
                    index = (index[0] + start,) + index[1:] if index else ()
                    shown.append(f" {list(index)}: {_item(actual[index])} (ACTUAL), {_item(want[index])} (DESIRED)")
        if first is None:
            return None
        if actual.size > _BIG:
            # numpy.testing allocates several whole-array temporaries (5-6 copies
            # of a 200 MB array); the counts gathered slice by slice say the same.
            head = "arrays differ" + (f" ({tol})" if tol.active else "")
            head += f"; first at index {first}: expected {_item(want[first])}, got {_item(actual[first])}"
            text = [
                f"Mismatched elements: {bad} / {actual.size} ({100 * bad / actual.size:.3g}%)",
                f"First {len(shown)} mismatches:" if len(shown) > 1 else "Mismatch at index:",
                *shown,
            ]
            if want.dtype.kind != "c":
                text.append(f"Max absolute difference among violations: {worst:g}")
            return _block(head + ":", "\n".join(text))
    # Word the failure (or compare a non-numeric array) with numpy's own testing function.
    try:
        if tol.active:
            np.testing.assert_allclose(actual, want, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(actual, want, strict=strict)
    except AssertionError as e:
        head = "arrays differ" + (f" ({tol})" if tol.active else "")
        if first is not None:
            head += f"; first at index {first}: expected {_item(want[first])}, got {_item(actual[first])}"
        return _block(head + ":", str(e))
    return None


def _approx_array(approx: Any, actual: Any) -> str | None:
    """``pytest.approx(ndarray) == actual`` with pytest's rule, slice by slice.

    pytest compares element by element in Python: 198 s and 1.5 GB for an
    equal 200 MB array. Same rule here, vectorised: equal, or both NaN with
    ``nan_ok``, or finite and within ``max(rel * |expected|, abs)`` (only
    ``abs`` when just ``abs`` is given); defaults rel=1e-6, abs=1e-12.
    """
    np = sys.modules["numpy"]
    expected = approx.expected
    if not isinstance(actual, np.ndarray) or expected.dtype.kind not in "biuf" or actual.dtype.kind not in "biuf":
        return None if approx == actual else f"expected {_short(approx)}, got {_short(actual)}"
    if expected.shape != actual.shape:
        return f"shape mismatch: expected {expected.shape}, got {actual.shape} (dtype {actual.dtype})"
    absolute = 1e-12 if approx.abs is None else approx.abs
    only_abs = approx.rel is None and approx.abs is not None
    relative = 1e-6 if approx.rel is None else approx.rel
    bad = 0
    first: tuple[int, ...] | None = None
    worst = 0.0
    for start, (a, e) in _blocks(np, actual, expected):
        with np.errstate(invalid="ignore", over="ignore"):
            a64, e64 = a.astype("float64", copy=False), e.astype("float64", copy=False)
            tolerance = absolute if only_abs else np.maximum(relative * np.abs(e64), absolute)
            off = np.abs(a64 - e64)
            ok = (a64 == e64) | (np.isfinite(e64) & (off <= tolerance))
            if approx.nan_ok:
                ok |= np.isnan(a64) & np.isnan(e64)
        if not ok.all():
            bad += int(ok.size - np.count_nonzero(ok))
            worst = max(worst, float(np.nanmax(np.where(ok, 0.0, off))) if off.size else 0.0)
            if first is None:
                first = _first_mismatch(np, actual.shape, start, a.shape, ok)
    if first is None:
        return None
    rule = f"abs={absolute:g}" if only_abs else f"rel={relative:g}, abs={absolute:g}"
    return (
        f"not approximately equal (pytest.approx {rule}): {bad} of {actual.size} elements differ; "
        f"first at index {first}: expected {_item(expected[first])}, got {_item(actual[first])}; "
        f"largest difference {worst:g}"
    )


# -- pandas ---------------------------------------------------------------------


def _is_pandas(pd: Any, *values: Any) -> bool:
    return any(isinstance(v, (pd.DataFrame, pd.Series, pd.Index)) for v in values)


def _pandas(pd: Any, expected: Any, actual: Any, tol: Tolerance) -> str | None:
    for cls, check in (  # noqa: B007 (both are used after the loop)
        (pd.DataFrame, "assert_frame_equal"),
        (pd.Series, "assert_series_equal"),
        (pd.Index, "assert_index_equal"),
    ):
        if isinstance(expected, cls):
            break
    else:
        return f"expected {_short(expected)}, got a pandas {type(actual).__name__}:\n{_cap(repr(actual))}"
    if not isinstance(actual, cls):
        return f"expected a {cls.__name__}, got {type(actual).__name__}: {_short(actual)}"
    options: dict[str, Any] = {"check_exact": not tol.active}
    if tol.active:
        options.update(rtol=tol.rtol, atol=tol.atol)
    try:
        getattr(pd.testing, check)(actual, expected, **options)
    except AssertionError as e:
        text = str(e).replace("[left]: ", "[actual]: ").replace("[right]:", "[expected]:")
        rows = _differing_rows(pd, expected, actual) if not tol.active else ""
        plural = {"DataFrame": "DataFrames", "Series": "Series", "Index": "Indexes"}[cls.__name__]
        return _block(f"{plural} differ{f' ({tol})' if tol.active else ''}:", text + rows)
    return None


def _differing_rows(pd: Any, expected: Any, actual: Any, limit: int = 5) -> str:
    """The first few (row, column) cells that differ; pandas only says what fraction does."""
    try:
        if isinstance(expected, pd.Index) or expected.shape != actual.shape or not expected.index.equals(actual.index):
            return ""
        if isinstance(expected, pd.Series):
            expected, actual = expected.to_frame(), actual.to_frame()
        if not expected.columns.equals(actual.columns):
            return ""
        cells: list[str] = []
        for column in expected.columns:
            e, a = expected[column], actual[column]
            differ = ~((e == a) | (e.isna() & a.isna()))
            for row in differ[differ].index[: limit - len(cells)]:
                cells.append(f"  row {row!r}, column {column!r}: expected {_item(e[row])}, got {_item(a[row])}")
            if len(cells) >= limit:
                break
        return ("\nfirst differing cells:\n" + "\n".join(cells)) if cells else ""
    except Exception:  # only a hint: never let it hide pandas' own message
        return ""

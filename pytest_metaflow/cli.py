"""The ``pytest-metaflow`` console script.

``pytest-metaflow generate FLOW_FILE [--params K=V ...] [--config NAME=PATH ...]
[--run PATHSPEC] [--out DIR] [--max-bytes N]`` writes step regression tests
(see :mod:`pytest_metaflow._generate`).
"""

from __future__ import annotations

import argparse
import sys
import time

from .errors import PytestMetaflowError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-metaflow", description="Tools of the pytest-metaflow plugin.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser(
        "generate",
        help="write one spin-based regression test per step from a run of a flow",
        description=(
            "Run FLOW_FILE once in a temporary store (or read --run PATHSPEC through your Metaflow "
            "configuration), record each step's inputs and outputs, and write a pytest module that "
            "spins every step with its recorded inputs and compares its outputs (artifact_snapshot)."
        ),
    )
    gen.add_argument("flow_file", metavar="FLOW_FILE", help="the flow file")
    gen.add_argument(
        "--params",
        nargs="+",
        default=[],
        metavar="K=V",
        help="flow parameters for the run (values read as Python literals, else strings)",
    )
    gen.add_argument("--config", nargs="+", default=[], metavar="NAME=PATH", help="Metaflow configs of the flow")
    gen.add_argument(
        "--run", metavar="PATHSPEC", help="record this existing run (Flow/run_id) instead of running the flow"
    )
    gen.add_argument(
        "--out", default="tests/generated", metavar="DIR", help="where to write the tests (default: %(default)s)"
    )
    gen.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        metavar="N",
        help="refuse when the recorded data exceeds N bytes (default: 10 MiB)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pytest-metaflow`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    from . import _generate

    start = time.monotonic()
    try:
        test_file, records = _generate.generate(
            args.flow_file,
            params=_generate.parse_params(args.params),
            configs=_generate.parse_assignments(args.config, "--config"),
            run_pathspec=args.run,
            out=args.out,
            max_bytes=args.max_bytes if args.max_bytes is not None else _generate.DEFAULT_MAX_BYTES,
        )
    except PytestMetaflowError as e:
        print(f"pytest-metaflow generate: error: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as e:  # Metaflow could not start or finish the run
        print(
            f"pytest-metaflow generate: error: the run of {args.flow_file} failed: {type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return 1
    steps = ", ".join(r.step for r in records)
    print(f"wrote {test_file} ({len(records)} tests: {steps}) in {time.monotonic() - start:.1f} s")
    print(f"run it with: pytest {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

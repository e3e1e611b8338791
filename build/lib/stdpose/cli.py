"""The `stdpose` command: one subcommand per module in `stdpose.commands`.

Each command module defines NAME, HELP, DESCRIPTION, `add_arguments(parser)` and `run(args) -> int`, and imports
heavy libraries inside `run`, so that `stdpose --help` stays fast. User mistakes (StdposeError) print one line and
exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from stdpose import __version__
from stdpose.errors import StdposeError


def _command_modules() -> list:
    import stdpose.commands as package

    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"stdpose.commands.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stdpose",
        description="Human pose estimation in sparsely-labeled videos (STDPose). "
        "Run `stdpose COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"stdpose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except StdposeError as err:
        print(f"stdpose {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stdpose {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

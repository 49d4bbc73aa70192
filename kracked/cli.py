"""The `kracked` command line: one entry point that dispatches to each command's own `main(argv)`.

Commands are imported lazily so that `kracked stack status` does not load pyarrow or ccxt. A command
that raises ConfigError exits 2 with one line on stderr; nothing else is printed for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence

from kracked.errors import ConfigError

# command -> "module:function"; each function takes argv (the words after the command) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("kracked.stack.cli:main", "start/stop/inspect the local Kafka broker and schema registry"),
    "schemas": ("schemas.cli:main", "register schemas / check them against the registry"),
    "connector": ("connector.app:main", "Kraken WebSocket v2 -> Kafka"),
    "sim": ("connector.kraken.sim.server:main", "local Kraken v2 WebSocket/REST simulator"),
    "book": ("consumers.book.__main__:main", "verified order books -> kracked.book.top"),
    "bars": ("consumers.bars.__main__:main", "OHLCV bars from trades -> kracked.bars"),
    "spread": ("consumers.spread.__main__:main", "spread statistics -> kracked.spread"),
    "parquet": ("consumers.parquet.__main__:main", "topics -> Parquet dataset"),
    "orders": ("consumers.orders.__main__:main", "signals -> ccxt orders -> kracked.orders"),
    "replay": ("consumers.replay.__main__:main", "replay a topic range or Parquet dataset"),
    "dashboard": ("consumers.dashboard.__main__:main", "live web page on the topics"),
    "up": ("kracked.up:main", "everything on one machine: local stack + connector + consumers"),
}


def available_commands() -> dict[str, str]:
    """Commands whose module is installed (the services are added as they are built)."""
    found = {}
    for name, (target, help_text) in COMMANDS.items():
        module = target.split(":")[0]
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found[name] = help_text
    return found


def _usage() -> str:
    lines = ["usage: kracked <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in available_commands().items()]
    return "\n".join(lines)


def resolve(name: str) -> Callable[[Sequence[str]], int]:
    target = COMMANDS[name][0]
    module_name, func = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, func)  # type: ignore[no-any-return,unused-ignore]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in available_commands():
        print(f"kracked: unknown command {name!r}; run `kracked --help` for the list", file=sys.stderr)
        return 2
    try:
        return int(resolve(name)(rest) or 0)
    except ConfigError as exc:
        print(f"kracked {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

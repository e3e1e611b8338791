"""Subcommands of the `stdpose` CLI, one module each (discovered by `stdpose.cli`)."""

"""The `hermes` command line: the Typer app (app), one module per command, the shared
options (options) and the entry point that maps errors to exit codes (main)."""

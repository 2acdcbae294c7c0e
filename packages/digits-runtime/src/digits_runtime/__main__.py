"""``python -m digits_runtime`` runs the `digits` command line."""

from digits_runtime.cli import main

main()

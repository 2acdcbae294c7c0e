"""``python -m digits_report`` runs the `digits-report` command line."""

from digits_report.cli import main

main()

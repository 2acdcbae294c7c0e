"""``python -m digits_data`` runs the digits-data command line."""

from digits_data.cli import main

main()

"""``python -m digits_train`` runs the digits-train command line."""

from digits_train.cli import main

main()

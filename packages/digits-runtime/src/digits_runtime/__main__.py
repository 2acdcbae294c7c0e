"""``python -m digits_runtime`` runs the `digits` command line."""

from digits_runtime.cli import main

# Guarded: worker processes of `digits serve --workers N` import this module again.
if __name__ == "__main__":
    main()

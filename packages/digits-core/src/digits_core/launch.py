"""The installed commands' entry points: each command's module is loaded inside a Ctrl-C guard.

A console script imports its entry point before any code of ours runs. Were that the command's
own module, it would load numpy, onnxruntime or torch (a second or more) unguarded, and a Ctrl-C
meanwhile would end in a traceback. This module imports nothing heavy; it loads the command's
module by name, and a Ctrl-C then ends as one during the command does (cli_support.run_fire).
"""

import importlib
import sys


def launch(name: str, module: str) -> None:
    """Run the ``main`` of ``module`` as the command ``name``; Ctrl-C while it loads exits 130."""
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    main()


def digits() -> None:
    """``digits``: predict, evaluate, serve and batch (digits-runtime)."""
    launch("digits", "digits_runtime.cli")


def digits_data() -> None:
    """``digits-data``: MNIST, curation, the handwriting set and the degradation suite."""
    launch("digits-data", "digits_data.cli")


def digits_train() -> None:
    """``digits-train``: fit and export."""
    launch("digits-train", "digits_train.cli")


def digits_report() -> None:
    """``digits-report``: the HTML report."""
    launch("digits-report", "digits_report.cli")

"""digits-runtime: torch-free inference for the digits model on onnxruntime."""

import sys
from typing import Any

from digits_core.errors import DigitsError
from digits_runtime.predictor import Prediction, Predictor

__all__ = ["DigitsError", "Prediction", "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed package's metadata (pyproject.toml's version) on
    first use: importing importlib.metadata would cost every import of this package tens of ms."""
    if name == "__version__":
        from importlib.metadata import version

        return version("digits-runtime")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _explain_unguarded_scripts() -> None:
    """In a worker process still importing its parent's script, say in one line why it fails.

    Processes started with "spawn" (dask.bag's default, multiprocessing's on macOS and Windows)
    import the script that started them. A script that starts processes at its top level, not
    under ``if __name__ == "__main__":``, then starts them again in each worker, which
    multiprocessing refuses with a page of traceback per worker, and the parent only sees a
    BrokenProcessPool. The worker's page becomes one line that says what to change.
    """
    process = sys.modules.get("multiprocessing.process")  # not imported: not such a worker
    if process is None or not getattr(process.current_process(), "_inheriting", False):
        return
    previous = sys.excepthook
    # Named now: by the time the error reaches the hook, the script's module is gone.
    script = getattr(sys.modules.get("__mp_main__"), "__file__", None) or "the main script"

    def explain(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        if issubclass(kind, RuntimeError) and "bootstrapping phase" in str(error):
            print(
                f"error: {script} starts worker processes when it is imported, and each worker imports it: "
                'put the code that runs the work under `if __name__ == "__main__":`',
                file=sys.stderr,
            )
            return
        previous(kind, error, trace)

    sys.excepthook = explain


_explain_unguarded_scripts()

"""Quiet third-party chatter for the length of a block, leaving the process's settings as they were."""

import contextlib
import logging
import warnings
from collections.abc import Iterable, Iterator, Mapping

LEAFSPEC_DEPRECATION = (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
"""Lightning 2.6 still builds torch pytree LeafSpec objects, which torch 2.13 deprecates."""


@contextlib.contextmanager
def quiet(levels: Mapping[str, int], ignored: Iterable[tuple[str, type[Warning]]] = ()) -> Iterator[None]:
    """Within the block, set the named loggers' levels and ignore the warnings ``(message regex, category)``.

    Library code must not change process-wide state: a caller's logging setup and warning
    filters (pytest's ``filterwarnings = error``, say) hold again as soon as the block ends.
    """
    loggers = {logging.getLogger(name): level for name, level in levels.items()}
    before = {logger: logger.level for logger in loggers}
    with warnings.catch_warnings():
        for message, category in ignored:
            warnings.filterwarnings("ignore", message=message, category=category)
        for logger, level in loggers.items():
            logger.setLevel(level)
        try:
            yield
        finally:
            for logger, level in before.items():
                logger.setLevel(level)

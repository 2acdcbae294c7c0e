"""The embeddable predictor: one ONNX model loaded once, predictions from files, bytes, images or arrays."""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

import digits_runtime.model_check as model_check
from digits_core import contract
from digits_core.errors import DigitsError, first_line
from digits_core.images import pixels_from_uint8
from digits_core.refusal import BASELINE_SCORE, RefusalRule, scores
from digits_runtime.sources import Source, check_range, read_pixels

BATCH_SIZE = 256  # images per onnxruntime call when predicting many
# More threads than this only add contention; far more (say 100000) never finish starting.
MAX_THREADS = (
    4 * len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 4 * (os.cpu_count() or 1)
)


@dataclass(frozen=True)
class Prediction:
    """Probabilities keyed by digit, the predicted digit, and whether the image looks like one.

    ``accepted`` is False when the model's refusal rule says the image is not any of its digits;
    ``prediction`` is then still the most probable digit.

    ``score`` is the refusal rule's score of the image (:attr:`Predictor.score_kind`; higher is
    more like a known digit): the image is accepted when it reaches the rule's threshold and its
    top probability the rule's floor (``min_probability``). A model
    without a rule scores by its largest probability and accepts every image.
    """

    probs: dict[int, float]
    prediction: int
    accepted: bool
    score: float

    def to_json(self) -> dict[str, Any]:
        """The output contract: ``{"probs": {"0": p0, ...}, "prediction": d, "accepted": true, "score": s}``.

        Probabilities are rounded to 6 decimals; the score is not, so that it can be compared
        with the rule's threshold exactly.
        """
        return {
            "probs": {str(d): round(p, 6) for d, p in self.probs.items()},
            "prediction": self.prediction,
            "accepted": self.accepted,
            "score": self.score,
        }


@dataclass(frozen=True)
class Classification:
    """What the model says about N images, as arrays."""

    probabilities: np.ndarray  # (N, len(labels)) float32
    predicted: np.ndarray  # (N,) int64 digits
    scores: np.ndarray  # (N,) float64, the refusal rule's score (max_probability without a rule)
    accepted: np.ndarray  # (N,) bool, all True without a rule

    def rows(self, which: np.ndarray) -> "Classification":
        """The classification of the images ``which`` selects (a boolean mask or indices)."""
        return Classification(*(getattr(self, f.name)[which] for f in fields(self)))

    @staticmethod
    def concatenate(parts: "Sequence[Classification]") -> "Classification":
        """The classifications of several batches of images, one after the other."""
        return Classification(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Classification))
        )


class Predictor:
    """Classify digits with an exported model on onnxruntime's CPU provider.

    Args:
        model: The ONNX file written by `digits-train export`: its path, or its bytes (as read
            from an object store, say).
        threads: Threads onnxruntime may use within an operator (default: one per core).

    Raises:
        DigitsError: The file is missing, is not ONNX, or does not follow the model contract.

    Threads: one Predictor may be used by many threads at once. It keeps no state between calls
    (everything it holds is set when it is made and never changed), and onnxruntime's
    ``InferenceSession.run`` may be called concurrently; each call reads and preprocesses its
    own images. Decoding images holds the GIL for much of its time, so for throughput use
    processes, one Predictor each, with ``threads=1``.

    Processes: a Predictor pickles as what it was made from, and is loaded again where it is
    unpickled (a multiprocessing or ProcessPoolExecutor worker, Spark, Ray, Dask). One made from
    a path pickles as that path made absolute, so the file must be there too; one made from
    bytes pickles as the bytes, and needs no file anywhere.
    """

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None) -> None:
        import onnxruntime as ort  # the heaviest import, paid once per Predictor

        if isinstance(model, bytearray | memoryview):
            model = bytes(model)
        if isinstance(model, bytes):
            path, self._name, loaded = None, f"the model given as {len(model):,} bytes", model
        elif isinstance(model, str | os.PathLike):
            path = Path(model)
            self._name = str(path)
            if "\0" in str(path):
                raise DigitsError(f"model {str(path)!r} holds a NUL character: no file has such a name")
            if path.is_dir():
                raise DigitsError(
                    f"model {path} is a folder: give the .onnx file, e.g. {path / 'model.onnx'}"
                )
            if not path.is_file():
                raise DigitsError(f"model {path} does not exist: run `make train` to create it")
            loaded = str(path)
        else:
            raise DigitsError(
                f"model must be the path of an ONNX file or its bytes, got {type(model).__name__}"
            )
        self._source = model if path is None else path.absolute()  # what a pickle reopens
        self._threads = threads
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.inter_op_num_threads = 1
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
                raise DigitsError(f"threads must be a whole number from 1 to {MAX_THREADS}, got {threads!r}")
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(loaded, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable models
            raise DigitsError(f"{self._name} is not a usable ONNX model: {first_line(exc)}") from None
        self.path: Path | None = path
        """The model's file as given; None for a model made from bytes."""
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.labels: tuple[int, ...] = model_check.check_model(self.session, self.metadata, self._name)
        self.refusal: RefusalRule | None = model_check.read_refusal(self.metadata, self._name)
        """The rule that refuses images unlike any digit; None: the model accepts every image."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as what the Predictor was made from: it is loaded again where it is unpickled."""
        return _reopen, (type(self), self._source, self._threads)

    @property
    def score_kind(self) -> str:
        """The score that decides refusal: the rule's, or max_probability for a model without one."""
        return self.refusal.score if self.refusal else BASELINE_SCORE

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Return probabilities (N, len(labels)) for MNIST-style pixels.

        ``pixels`` is (28, 28), (N, 28, 28) or (N, 1, 28, 28); uint8 in 0-255 or float in [0, 1].
        Raises :class:`DigitsError` if the model answers any image with NaN or infinity.
        """
        logits, probabilities = self._run(pixels)
        self._check_finite(_finite_rows(logits, probabilities))
        return probabilities

    def classify(self, pixels: np.ndarray) -> Classification:
        """Return probabilities, predicted digits, refusal scores and acceptance for pixels.

        ``pixels`` as for :meth:`probabilities`; raises :class:`DigitsError` as it does.
        """
        classified, finite = self._classify(pixels)
        self._check_finite(finite)
        return classified

    def _classify(self, pixels: np.ndarray) -> tuple[Classification, np.ndarray]:
        """:meth:`classify` without the check; also return which rows are finite, (N,) bool."""
        logits, probabilities = self._run(pixels)
        finite = _finite_rows(logits, probabilities)
        with np.errstate(invalid="ignore", over="ignore"):  # rows that are not finite are never used
            values = scores(logits, self.score_kind)
            accepted = self.refusal.accepts(logits) if self.refusal else np.ones(len(values), dtype=bool)
        predicted = np.asarray(self.labels, dtype=np.int64)[probabilities.argmax(1)]
        return Classification(probabilities, predicted, values, accepted), finite

    def _check_finite(self, finite: np.ndarray) -> None:
        if not finite.all():
            raise self._non_finite(f"{int((~finite).sum())} of {len(finite)} images")

    def _non_finite(self, which: str) -> DigitsError:
        """The error that stands in for answers with NaN or infinity: they are never shown as numbers."""
        return DigitsError(
            f"{self._name} gives NaN or infinity for {which}: the model is broken on such input; "
            "train and export it again"
        )

    def _run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (logits, probabilities), each (N, len(labels)), in batches of ``BATCH_SIZE``."""
        try:
            array = np.asarray(pixels)
        except (ValueError, TypeError) as exc:  # a ragged list, or objects numpy cannot hold
            raise DigitsError(f"pixels must be an array of numbers: {first_line(exc)}") from None
        size = contract.IMAGE_SIZE
        if array.dtype.kind not in "uif":
            raise DigitsError(f"pixels must be numbers, got an array of {array.dtype}")
        if array.dtype == np.uint8:
            array = pixels_from_uint8(array)
        if (
            array.shape[-2:] != (size, size)
            or array.ndim not in (2, 3, 4)
            or array.shape[1:-2] not in ((), (1,))
        ):
            shapes = f"({size}, {size}), (N, {size}, {size}) or (N, 1, {size}, {size})"
            raise DigitsError(f"pixels must be {shapes}, got {array.shape}")
        array = np.ascontiguousarray(array.reshape(-1, 1, size, size), dtype=np.float32)
        check_range(array)
        outputs = [contract.LOGITS_NAME, contract.PROBABILITIES_NAME]
        chunks = [
            self.session.run(outputs, {contract.INPUT_NAME: array[i : i + BATCH_SIZE]})
            for i in range(0, len(array), BATCH_SIZE)
        ]
        if not chunks:
            empty = np.zeros((0, len(self.labels)), dtype=np.float32)
            return empty, empty
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])

    def predict(self, source: Source) -> Prediction:
        """Classify one image: a file path, the bytes of an image file, a binary file object, a PIL
        image, or an image array (see :data:`Source`).

        Raises :class:`DigitsError` when the source cannot be read (or is none of these), holds no
        digit, or the model answers it with NaN or infinity.
        """
        return self.predict_many([source])[0]

    def predict_many(self, sources: Iterable[Source]) -> list[Prediction]:
        """Classify several images (each a :data:`Source`) in batches.

        Raises the first source's :class:`DigitsError` if any cannot be read; use
        :meth:`predict_each` to get the others' predictions anyway.
        """
        results = self.predict_each(sources)
        for result in results:
            if isinstance(result, DigitsError):
                raise result
        return results

    def predict_each(self, sources: Iterable[Source]) -> list[Prediction | DigitsError]:
        """Classify each source (a :data:`Source`), one answer per source, in order.

        A source that cannot be read or decoded, is of no type above, or that the model answers
        with NaN or infinity gives its :class:`DigitsError` in its place; the others are still
        classified, ``BATCH_SIZE`` images per onnxruntime call.
        """
        classified, errors = self.classify_each(sources)
        predictions = iter(self.to_predictions(classified))
        return [error or next(predictions) for error in errors]

    def classify_each(self, sources: Iterable[Source]) -> tuple[Classification, list[DigitsError | None]]:
        """Classify the sources that can be read; return that, in order, and each source's error or None.

        A source that cannot be read, or that the model answers with NaN or infinity, has its
        :class:`DigitsError` and is left out of the classification. Every ``BATCH_SIZE``
        consecutive sources make one onnxruntime call of those among them that could be read, so
        the same sources give the same batches, hence the same bits, wherever they are classified
        (:meth:`predict_each`, `digits predict`, `digits batch`).
        """
        sources = list(sources)
        errors: list[DigitsError | None] = [None] * len(sources)
        parts = []
        for start in range(0, len(sources), BATCH_SIZE):
            loaded: dict[int, np.ndarray] = {}
            for i in range(start, min(start + BATCH_SIZE, len(sources))):
                try:
                    loaded[i] = read_pixels(sources[i])
                except DigitsError as exc:
                    errors[i] = exc
            if loaded:
                classified, finite = self._classify(np.stack(list(loaded.values())))
                for i, ok in zip(loaded, finite, strict=True):
                    if not ok:
                        errors[i] = self._non_finite("this image")
                parts.append(classified.rows(finite))
        if not parts:
            size = contract.IMAGE_SIZE
            return self.classify(np.zeros((0, size, size), dtype=np.float32)), errors
        return Classification.concatenate(parts), errors

    def to_predictions(self, classified: Classification) -> list[Prediction]:
        """Turn a :class:`Classification` of N images into N :class:`Prediction` objects."""
        rows = zip(
            classified.probabilities,
            classified.predicted,
            classified.accepted,
            classified.scores,
            strict=True,
        )
        return [
            Prediction(
                {d: float(p) for d, p in zip(self.labels, probs, strict=True)},
                int(digit),
                bool(ok),
                float(score),
            )
            for probs, digit, ok, score in rows
        ]


def _reopen(cls: type[Predictor], model: Path | bytes, threads: int | None) -> Predictor:
    """A Predictor loaded again from a pickle (see :meth:`Predictor.__reduce__`)."""
    return cls(model, threads=threads)


def _finite_rows(logits: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Which images (rows) the model answered with numbers only, (N,) bool."""
    return np.isfinite(logits).all(1) & np.isfinite(probabilities).all(1)

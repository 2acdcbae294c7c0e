"""The exported model describes itself: who wrote it, what its input and outputs hold, and no
statistics that would invite a consumer to normalize the pixels a second time."""

import json
from importlib import metadata

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from digits_core import contract
from digits_core.images import pixels_from_uint8
from digits_data import dataset
from digits_train.export import describe, model_version

pytestmark = pytest.mark.slow  # torch and Lightning take seconds to import


def test_producer_and_versions_are_digits_trains(trained):
    proto = onnx.load(trained["dir"] / "model.onnx")
    version = metadata.version("digits-train")
    assert (proto.producer_name, proto.producer_version) == ("digits-train", version)
    assert proto.model_version == model_version(version) > 0
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta[contract.META_VERSIONS])["digits-train"] == version


def test_graph_input_and_outputs_say_range_polarity_and_centring(trained):
    proto = onnx.load(trained["dir"] / "model.onnx")
    assert proto.doc_string == proto.graph.doc_string
    assert proto.graph.doc_string.startswith("Classifies one handwritten digit as 0, 5 or 8, or refuses it")
    assert "'labels'" in proto.graph.doc_string
    assert "'refusal'" in proto.graph.doc_string
    (pixels,) = proto.graph.input
    for words in (
        "[0, 1]",
        "white ink (1.0) on black (0.0)",
        "centre of mass",
        "20x20",
        "without subtracting",
    ):
        assert words in pixels.doc_string, words
    logits, probabilities = proto.graph.output
    assert "(N, 3)" in logits.doc_string
    assert "minus its score for 'none of them'" in logits.doc_string
    assert "softmax of the logits" in probabilities.doc_string
    # ONNX's own reader shows them, as tools such as Netron do.
    onnx.checker.check_model(proto, full_check=True)


def test_nothing_in_the_metadata_invites_a_second_normalization(trained, small_curated):
    path = trained["dir"] / "model.onnx"
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert not [key for key in meta if "mean" in key or "std" in key or "normaliz" in key]
    assert set(meta) == {
        contract.META_LABELS,
        contract.META_FINGERPRINT,
        contract.META_VAL_METRICS,
        contract.META_REFUSAL,
        contract.META_TRAINING_CONFIG,
        contract.META_VERSIONS,
        contract.META_PARITY,
        contract.META_TRAINED_ON,
    }
    # Why it matters: the graph already normalizes, and doing it again changes the answers.
    manifest = dataset.load_manifest(small_curated)
    mean, std = manifest["normalization"]["mean"], manifest["normalization"]["std"]
    pixels = pixels_from_uint8(dataset.load_split(small_curated, "eval").images)[:, None]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    once = session.run([contract.PROBABILITIES_NAME], {contract.INPUT_NAME: pixels})[0]
    twice = session.run([contract.PROBABILITIES_NAME], {contract.INPUT_NAME: (pixels - mean) / std})[0]
    assert np.abs(once - twice).max() > 0.1


@pytest.mark.parametrize(
    ("version", "number"),
    [("0.1.0", 1_000), ("1.2.3", 1_002_003), ("2.0", 2_000_000), ("0.10.0rc1", 10_000), ("3", 3_000_000)],
)
def test_model_version_orders_as_the_versions_do(version, number):
    assert model_version(version) == number


@pytest.mark.parametrize("reject", [True, False])
def test_describe_names_the_labels_in_order_and_what_the_logits_are(reject):
    values = [
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", 3])
        for name in (contract.INPUT_NAME, contract.LOGITS_NAME, contract.PROBABILITIES_NAME)
    ]
    nodes = [
        onnx.helper.make_node("Identity", [contract.INPUT_NAME], [contract.LOGITS_NAME]),
        onnx.helper.make_node("Softmax", [contract.LOGITS_NAME], [contract.PROBABILITIES_NAME]),
    ]
    proto = onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", values[:1], values[1:]))
    describe(proto, [8, 1, 3], reject)
    assert proto.graph.doc_string.startswith("Classifies one handwritten digit as 8, 1 or 3, or refuses it")
    logits = proto.graph.output[0].doc_string
    assert logits.startswith("float32 (N, 3): one column per digit (8, 1, 3), the network's score")
    assert ("minus its score for 'none of them'" in logits) is reject
    assert proto.graph.output[1].doc_string.startswith("float32 (N, 3): softmax of the logits")

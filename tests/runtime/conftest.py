"""A real ONNX model that follows the contract, built without torch: these tests run without it."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from digits_data import contract, dataset
from digits_data.images import pixels_from_uint8


def contract_model(
    class_means: np.ndarray, labels: list[int], fingerprint: str, side: int = contract.IMAGE_SIZE
) -> onnx.ModelProto:
    """A nearest-class-mean classifier as an ONNX graph: logits_c = x·m_c - |m_c|²/2, then softmax."""
    weights = class_means.reshape(len(labels), -1).T.astype(np.float32)  # (side*side, C)
    bias = (-0.5 * (class_means.reshape(len(labels), -1) ** 2).sum(1)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "b"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "temperature"], [contract.LOGITS_NAME]),
        helper.make_node("Softmax", [contract.LOGITS_NAME], [contract.PROBABILITIES_NAME], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "nearest_class_mean",
        [helper.make_tensor_value_info(contract.INPUT_NAME, TensorProto.FLOAT, ["batch", 1, side, side])],
        [
            helper.make_tensor_value_info(contract.LOGITS_NAME, TensorProto.FLOAT, ["batch", len(labels)]),
            helper.make_tensor_value_info(
                contract.PROBABILITIES_NAME, TensorProto.FLOAT, ["batch", len(labels)]
            ),
        ],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.array(0.1, dtype=np.float32), "temperature"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    helper.set_model_props(
        model,
        {
            contract.META_LABELS: json.dumps(labels),
            contract.META_MEAN: "0.1542",
            contract.META_STD: "0.3295",
            contract.META_FINGERPRINT: fingerprint,
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="session")
def make_model():
    """The builder of contract-following ONNX models, for tests that need a variant."""
    return contract_model


@pytest.fixture(scope="session")
def model_path(small_curated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A contract-following ONNX model fitted (class means) on the small curation's train split."""
    train = dataset.load_split(small_curated, "train")
    labels = sorted(set(train.labels.tolist()))
    pixels = pixels_from_uint8(train.images)
    means = np.stack([pixels[train.labels == d].mean(0) for d in labels])
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    onnx.save(contract_model(means, labels, dataset.fingerprint(small_curated)), path)
    return path

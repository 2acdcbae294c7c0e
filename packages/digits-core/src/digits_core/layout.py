"""Where the pipeline keeps its artifacts: the paths every command defaults to, relative to the
folder it runs in (the repository root for `make`). Each path is written here once."""

ARTIFACTS = "artifacts"
MNIST_DIR = f"{ARTIFACTS}/mnist"
CURATED_DIR = f"{ARTIFACTS}/curated"
HANDWRITING_DIR = f"{ARTIFACTS}/handwriting"
SUITE_DIR = f"{ARTIFACTS}/suite"
TRAIN_DIR = f"{ARTIFACTS}/train"
CHECKPOINT = f"{TRAIN_DIR}/best.ckpt"
MODEL = f"{ARTIFACTS}/model.onnx"
EVAL_DIR = f"{ARTIFACTS}/eval"
TIMINGS_DIR = f"{ARTIFACTS}/timings"
REPORT_DIR = f"{ARTIFACTS}/report"
SEEDS_JSON = f"{ARTIFACTS}/seeds.json"


def eval_json(split: str) -> str:
    """The JSON file `make evaluate` writes for ``split``."""
    return f"{EVAL_DIR}/{split}.json"

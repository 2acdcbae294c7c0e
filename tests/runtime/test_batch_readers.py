"""One `digits batch` OUTPUT, read by the five readers people use: the same rows, the same types.

The archive has three unreadable files, all in the last part, so a part with error rows and
parts without them are read together: a type that depended on the rows would show here.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real `digits batch` job read by five readers

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")
pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")
pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")

ANSWERS = ["prediction", "prob_0", "prob_5", "prob_8", "accepted", "score"]


@pytest.fixture(scope="module")
def output(archive, refusing_model, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("readers") / "out"
    model = str(refusing_model[0])
    done = subprocess.run(
        [sys.executable, "-m", "digits_runtime", "batch", "--model", model, str(archive), str(output)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["errors"] == 3
    return output


# dask.dataframe's reader calls reset_index(inplace=True), which pandas 3.1 deprecates: Dask's
# warning to fix, not ours.
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
def test_five_readers_read_the_same_rows_with_the_same_types(output):
    reference = pq.read_table(output).sort_by("path")
    assert reference.num_rows == 604
    errors = sorted(
        p for p, e in zip(reference["path"].to_pylist(), reference["error"].to_pylist(), strict=True) if e
    )
    assert len(errors) == 3

    by_pandas = pd.read_parquet(output)
    by_dask = dd.read_parquet(output)
    computed = by_dask.compute()
    frames = {
        "pandas": by_pandas,
        "dask": computed,
        "pyarrow.dataset": ds.dataset(output).to_table().to_pandas(),
    }
    for name, frame in frames.items():
        assert len(frame) == 604, name
        assert {c: str(frame[c].dtype) for c in ANSWERS} == {
            "prediction": "Int64",
            "prob_0": "float32",
            "prob_5": "float32",
            "prob_8": "float32",
            "accepted": "boolean",
            "score": "float64",
        }, name
        assert sorted(frame.loc[frame["error"].notna(), "path"]) == errors, name
    assert dict(by_dask.dtypes) == dict(computed.dtypes)  # what Dask declares is what it computes

    polars = {"read": pl.read_parquet(output), "scan": pl.scan_parquet(output).collect()}
    for name, frame in polars.items():
        assert frame.height == 604, name
        assert {c: frame.schema[c] for c in ANSWERS} == {
            "prediction": pl.Int64,
            "prob_0": pl.Float32,
            "prob_5": pl.Float32,
            "prob_8": pl.Float32,
            "accepted": pl.Boolean,
            "score": pl.Float64,
        }, name
        assert sorted(frame.filter(pl.col("error").is_not_null())["path"].to_list()) == errors, name

    for pattern in (f"{output}/*", f"{output}/*.parquet"):
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{pattern}')")
        assert dict(zip(relation.columns, map(str, relation.types), strict=True)) == {
            "path": "VARCHAR",
            "prediction": "BIGINT",
            "prob_0": "FLOAT",
            "prob_5": "FLOAT",
            "prob_8": "FLOAT",
            "accepted": "BOOLEAN",
            "score": "DOUBLE",
            "error": "VARCHAR",
        }
        table = relation.arrow()
        table = table.read_all() if hasattr(table, "read_all") else table
        assert table.sort_by("path").equals(reference.replace_schema_metadata(None).cast(table.schema)), (
            pattern
        )


def test_a_part_of_error_rows_has_the_types_of_the_others(output):
    parts = sorted(output.iterdir())
    schemas = {pq.read_schema(part).remove_metadata() for part in parts}
    assert len(schemas) == 1
    frames = [pd.read_parquet(part) for part in parts]
    assert [frame["error"].notna().sum() for frame in frames] == [0, 0, 3]
    assert len({tuple(map(str, frame.dtypes)) for frame in frames}) == 1

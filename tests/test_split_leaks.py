"""Splits without leaks: on every external data set the project splits itself, no dev or test text of a challenge is within
TF-IDF cosine 0.9 of a train text of that challenge (data.common.leak_free_splits groups them; split_leaks measures)."""
import pytest

from sage_bench.registry import dataset_names, get_dataset, lookup, is_builtin
from sage_bench.data.common import LEAK_COSINE, split_leaks

EXTERNAL = [n for n in dataset_names() if not is_builtin(lookup("dataset", n))]


def test_every_external_loader_is_checked():
    assert {"acebench", "apibank", "toolalpaca", "taskbench", "bfcl", "toolbench", "metatool"} <= set(EXTERNAL)
    assert LEAK_COSINE == 0.9


@pytest.mark.parametrize("name", EXTERNAL)
def test_no_dev_or_test_text_near_a_train_text(name):
    try: ds = get_dataset(name)
    except FileNotFoundError: pytest.skip(f"data set {name} not available")
    leaks = split_leaks(ds)
    assert all(v == 0 for v in leaks.values()), (name, leaks)

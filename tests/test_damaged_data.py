"""Every loader on the damaged-data corpus of tests/damage.py (copies of each data set's own files, one file damaged one
way per copy), strict and lenient: damage to a whole file is a `DataFileError` naming the file (and the line where it
is known) in both modes; damage to one record is a `RecordError` naming file and line when strict, and a skip counted
with that file and line when lenient, which the load summary records and stderr shows. No other exception type
(UnicodeDecodeError, JSONDecodeError, TypeError, KeyError, ...) may come out, and no damaged copy may load silently."""
import os
from pathlib import Path

import pytest

from sage_bench.core import RecordError
from sage_bench.data.common import DataFileError

from damage import cases, load, make

CASES = cases()
# the most samples one source record yields (an API-Bank dialogue: one per user turn; a ToolAlpaca toolset: two per
# instruction), so that a lenient load cannot lose more than its skips account for
PER_RECORD = {"apibank": 20, "toolalpaca": 40}
_CLEAN: dict = {}


def _clean_count(case) -> int:
    "Samples of the undamaged data set, loaded with the case's options."
    key = (case.dataset, repr(sorted(case.spec.load.items())))
    if key not in _CLEAN: _CLEAN[key] = len(load(case, None, False).samples)
    return _CLEAN[key]


def _line_ok(got, want) -> bool:
    if want is None: return True
    return want[0] <= (got or 0) <= want[1] if isinstance(want, tuple) else got == want


def _names(err_file, target: Path) -> bool:
    return err_file is not None and Path(err_file).exists() and os.path.samefile(err_file, target)


def test_corpus_covers_every_loader_and_kind():
    names = {c.dataset for c in CASES}
    present = [n for n in ("sage", "acebench", "apibank", "toolalpaca", "taskbench", "bfcl", "toolbench", "metatool")
               if any(c.dataset == n for c in CASES)]
    assert "sage" in present and ("toolbench" in names) == ("toolbench_per_query" in names)
    kinds = {c.kind for c in CASES}
    assert {"truncated_line", "invalid_utf8", "empty", "cut_array", "trailing_comma", "wrong_type", "missing_field",
            "unknown_tool", "duplicate_id", "big_field"} <= kinds
    if any(c.spec.fmt == "csv" for c in CASES): assert {"broken_quote", "missing_column", "extra_column"} <= kinds


def _fast_cases(cases) -> set:
    "Ids of the cases the fast tier runs: each loader and each kind of damage at least once (the first case that adds one)."
    seen_ds, seen_kind, keep = set(), set(), set()
    for c in cases:
        if c.dataset not in seen_ds or c.kind not in seen_kind: keep.add(c.id); seen_ds.add(c.dataset); seen_kind.add(c.kind)
    return keep


FAST = _fast_cases(CASES)


# the whole corpus runs in the slow tier (CI's --rest); the fast tier runs a copy of each loader and each kind of damage
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=() if c.id in FAST else pytest.mark.slow) for c in CASES])
def test_damaged_copy(case, tmp_path, capsys):
    root, target, line = make(case, tmp_path)
    data_dir = root
    # strict: an error naming the damaged file (and line); never a raw decoding/type/key error
    with pytest.raises(RecordError) as e:
        load(case, data_dir, lenient=False)
    err = e.value
    assert _names(err.file, target), f"the error names {err.file}, not the damaged {target}: {err}"
    assert _line_ok(err.line, line), f"line {err.line}, expected {line}: {err}"
    assert isinstance(err, DataFileError) == (case.level == "file"), f"{type(err).__name__} for {case.level}-level damage: {err}"
    if case.level == "file":
        # lenient: the same whole-file error
        with pytest.raises(DataFileError) as e2:
            load(case, data_dir, lenient=True)
        assert _names(e2.value.file, target) and e2.value.line == err.line
        return
    # lenient: the record is skipped and counted with file and line; the summary and stderr say so
    capsys.readouterr()
    ds = load(case, data_dir, lenient=True)
    sm = ds.load_summary()
    assert sm["lenient"] and sm["n_skipped"] == len(sm["skipped"]) >= 1
    assert any(_names(x["file"], target) and _line_ok(x["line"], line) for x in sm["skipped"]), sm["skipped"][:5]
    assert all(x["file"] and x["reason"] for x in sm["skipped"])
    lost = _clean_count(case) - len(ds.samples)
    assert lost <= PER_RECORD.get(case.dataset, 2) * sm["n_skipped"], f"{lost} samples lost for {sm['n_skipped']} skip(s)"
    out = capsys.readouterr().err
    assert f"lenient load, {sm['n_skipped']} record(s) skipped" in out and f"{sm['skipped'][0]['file']}:" in out

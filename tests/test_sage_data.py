"Tests of the built-in `sage` data set: reproducibility, label integrity and difficulty."
import json
from collections import Counter

import pytest

from sage_bench.core import PlanningSample, RecordError, SelectionSample, TimingSample, resources_dir
from sage_bench.data.sage import generate_sage, load_sage, synthetic_tools, write_sage

SHIPPED = resources_dir() / "sage"


@pytest.fixture(scope="module")
def ds():
    return load_sage()


@pytest.mark.slow                 # runs the whole generator: the full tier only
def test_regeneration_is_byte_identical(tmp_path):
    "Regenerating with seed 42 (in this process) reproduces the shipped files byte for byte."
    write_sage(tmp_path, seed=42)
    for f in ("tools.jsonl", "samples.jsonl"):
        assert (tmp_path / f).read_bytes() == (SHIPPED / f).read_bytes(), f"{f} differs from the shipped copy"


@pytest.mark.slow                 # runs the whole generator: the full tier only
def test_other_seed_gives_other_samples():
    _, a = generate_sage(42)
    _, b = generate_sage(7)
    assert [s.to_dict() for s in a] != [s.to_dict() for s in b]


def test_counts_and_exact_splits(ds):
    assert ds.counts() == {"tool_selection": {"train": 420, "dev": 90, "test": 90},
                           "planning": {"train": 210, "dev": 45, "test": 45},
                           "timing": {"train": 210, "dev": 45, "test": 45}}
    assert 1150 <= len(ds.tools) <= 1250 and len(ds.tools.categories) == 50
    assert Counter(t.category for t in ds.tools).most_common()[-1][1] >= 18


def test_every_gold_id_exists(ds):
    ids = set(ds.tools.ids)
    for s in ds.samples:
        if isinstance(s, SelectionSample): assert set(s.relevant_tools) <= ids, s.id
        if isinstance(s, PlanningSample): assert set(s.tool_sequence) <= ids, s.id
        if isinstance(s, TimingSample) and "gold_tool" in s.meta: assert s.meta["gold_tool"] in ids, s.id


def test_tools_are_typed_and_described(ds):
    for t in ds.tools:
        assert t.id == f"{t.category}.{t.name}"
        assert t.description.endswith(".") and len(t.description.split()) >= 5
        props = t.parameters["properties"]
        assert set(t.parameters["required"]) <= set(props)
        assert all("type" in p and p.get("description") for p in props.values())
        assert t.returns and t.returns["type"] == "object"
    assert len({t.description for t in ds.tools}) > 0.95 * len(ds.tools)


def test_selection_labels(ds):
    sel = ds.select("tool_selection")
    assert Counter(s.meta["n_tools"] for s in sel) == {1: 420, 2: 150, 3: 30}
    assert len({s.query for s in sel}) == len(sel)
    assert all(not s.candidate_tools for s in sel)
    # the query says what is needed, never the tool's name
    for s in sel:
        assert not any(t.split(".", 1)[1] in s.query for t in s.relevant_tools), s.query
    # every category has queries in the test split
    assert len({s.meta["category"] for s in ds.select("tool_selection", "test")}) >= 45


def test_plans_are_dependency_chains(ds):
    plans = ds.select("planning")
    assert set(Counter(len(p.steps) for p in plans)) == set(range(2, 9))
    for p in plans:
        for i, st in enumerate(p.steps):
            refs = [v for v in (st.arguments or {}).values() if isinstance(v, str) and v.startswith("$step")]
            used = sorted({int(r[5:].split(".")[0]) for r in refs})
            assert used == st.depends_on, (p.id, i)
            if i: assert st.depends_on, f"{p.id}: step {i} uses nothing from earlier steps"
            for r in refs:          # the referenced field is an output of the referenced step
                k, fld = r[5:].split(".", 1)
                assert fld in ds.tools[p.steps[int(k)].tool_id].returns["properties"], (p.id, r)
    assert sum(p.meta["cross_category"] for p in plans) > 50


def test_timing_has_hard_cases_on_both_sides(ds):
    tim = ds.select("timing")
    assert Counter(t.should_call_tool for t in tim) == {True: 150, False: 150}
    for label in (True, False):
        assert sum(t.meta["hard"] for t in tim if t.should_call_tool is label) >= 30
    for t in tim:
        if t.meta["kind"] == "answer_in_context": assert t.context and not t.should_call_tool
    for split in ("train", "dev", "test"):
        assert {t.should_call_tool for t in ds.select("timing", split)} == {True, False}


def test_bm25_is_neither_broken_nor_trivial(ds):
    "BM25 over tool.text() on the selection test split: hit@5 between 0.3 and 0.95."
    import bm25s
    ids = ds.tools.ids
    ret = bm25s.BM25()
    ret.index(bm25s.tokenize([t.text() for t in ds.tools], stopwords="en", show_progress=False), show_progress=False)
    test = ds.select("tool_selection", "test")
    res, _ = ret.retrieve(bm25s.tokenize([s.query for s in test], stopwords="en", show_progress=False), k=5, show_progress=False)
    hit5 = sum(any(ids[j] in s.relevant_tools for j in row) for s, row in zip(test, res)) / len(test)
    assert 0.3 <= hit5 <= 0.95, hit5


def test_bad_line_names_file_line_and_field(tmp_path):
    lines = (SHIPPED / "samples.jsonl").read_text().splitlines()
    d = json.loads(lines[2]); d["split"] = "validation"; lines[2] = json.dumps(d)
    (tmp_path / "samples.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "tools.jsonl").write_bytes((SHIPPED / "tools.jsonl").read_bytes())
    with pytest.raises(RecordError) as e: load_sage(tmp_path)
    assert "samples.jsonl:3" in str(e.value) and "split" in str(e.value)
    lenient = load_sage(tmp_path, lenient=True)
    assert len(lenient.samples) == 1199 and lenient.skipped


def test_missing_files_say_how_to_regenerate(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_sage"): load_sage(tmp_path)


def test_registered():
    from sage_bench.registry import get_dataset
    assert len(get_dataset("sage_v1", cache=False).samples) == 1200


def test_synthetic_tools_scale_to_20k(ds):
    extra = synthetic_tools(20000, exclude_ids=ds.tools.ids)
    assert len(extra) == 20000 and len({t.id for t in extra}) == 20000
    assert not {t.id for t in extra} & set(ds.tools.ids)
    assert len({t.description for t in extra}) == 20000
    assert [t.id for t in synthetic_tools(50)] == [t.id for t in synthetic_tools(50)]


def test_material_is_read_from_package_data(tmp_path):
    "The generator's material lies in resources/sage/material/ (shipped with the package); a damaged file names itself."
    from sage_bench.data import sage
    assert sage.MATERIAL == resources_dir() / "sage" / "material"
    names = {p.stem for p in sage.MATERIAL.glob("*.json")}
    assert {"pools", "fields", "timing", *sage.CATEGORY_FILES} <= names
    assert [c.id for c in sage.CATEGORIES] == [d["id"] for f in sage.CATEGORY_FILES for d in sage._material(f)]
    assert set(sage.FIELDS) == set(sage._material("fields"))
    (tmp_path / "fields.json").write_text('{"x": {"type": "string",\n}')
    with pytest.raises(ValueError, match=r"fields\.json.*line 2"):
        sage._material("fields", tmp_path)

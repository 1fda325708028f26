"""Loaders for BFCL, ToolBench and MetaTool: counts derived from the raw files, ground truth traced back
to the answer files, deterministic splits, strict/lenient handling of corrupted copies."""
import csv, json, shutil
from collections import Counter

import pytest

from sage_bench.core import RecordError, split_of
from sage_bench.data.common import DataFileError
from sage_bench.registry import find_data_dir, get_dataset
from sage_bench.data.bfcl import (load_bfcl, BFCL_TIMING_POSITIVE, BFCL_TIMING_NEGATIVE, BFCL_SELECTION,
                                  BFCL_MULTI_TURN, parse_call)
from sage_bench.data.toolbench import load_toolbench, load_toolbench_per_query, TOOLBENCH_GROUPS
from sage_bench.data.metatool import load_metatool


def _dir(name):
    p = find_data_dir(name, required=False)
    if p is None: pytest.skip(f"data set {name} not available")
    return p

def _jsonl(path): return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]

# ---------------------------------------------------------------- BFCL

@pytest.fixture(scope="module")
def bfcl_dir(): return _dir("bfcl") / "data"

@pytest.fixture(scope="module")
def bfcl(bfcl_dir): return load_bfcl()

def test_bfcl_counts_from_raw(bfcl, bfcl_dir):
    n = lambda cat: len(_jsonl(bfcl_dir / f"BFCL_v4_{cat}.json"))
    pos, neg = sum(n(c) for c in BFCL_TIMING_POSITIVE), sum(n(c) for c in BFCL_TIMING_NEGATIVE)
    timing = bfcl.select("timing")
    assert sum(s.should_call_tool for s in timing) == pos == 2367
    assert sum(not s.should_call_tool for s in timing) == neg == 1124
    assert len(bfcl.select("tool_selection")) == sum(n(c) for c in BFCL_SELECTION) == 1253
    assert len(bfcl.select("planning")) == sum(n(c) for c in BFCL_MULTI_TURN) == 800
    # one tool per distinct published definition
    defs = {json.dumps(fn, sort_keys=True) for c in BFCL_TIMING_POSITIVE + BFCL_TIMING_NEGATIVE
            for r in _jsonl(bfcl_dir / f"BFCL_v4_{c}.json") for fn in r["function"]}
    defs |= {json.dumps(fn, sort_keys=True) for f in (bfcl_dir / "multi_turn_func_doc").glob("*.json") for fn in _jsonl(f)}
    assert len(bfcl.tools) == len(defs)
    assert bfcl.check() is bfcl and not bfcl.skipped

def test_bfcl_selection_gold_is_possible_answer(bfcl, bfcl_dir):
    ps = get_dataset("bfcl_per_sample")
    assert ps.name == "bfcl_per_sample" and ps.counts() == {"tool_selection": bfcl.counts()["tool_selection"]}
    for cat in BFCL_SELECTION:
        qs = {r["id"]: r for r in _jsonl(bfcl_dir / f"BFCL_v4_{cat}.json")}
        for a in _jsonl(bfcl_dir / "possible_answer" / f"BFCL_v4_{cat}.json"):
            s = ps.sample(f"selection/{a['id']}")
            assert [ps.tools[t].name for t in s.relevant_tools] == [next(iter(c)) for c in a["ground_truth"]]
            # per-sample task: candidates are the sample's own functions, with the variant it defines
            fns = qs[a["id"]]["function"]
            assert [ps.tools[t].name for t in s.candidate_tools] == [f["name"] for f in fns]
            for t, f in zip(s.candidate_tools, fns):
                assert ps.tools[t].description == f["description"]
            assert len(s.candidate_tools) >= 2     # never "the single candidate is the answer"
            # the default task: the same query and gold names over the pooled corpus
            p = bfcl.sample(f"selection/{a['id']}")
            assert p.query == s.query and p.meta["subset"] == cat and p.meta["corpus"] == "pooled"
            assert [bfcl.tools[t].name.lower() for t in p.relevant_tools] == [next(iter(c)).lower() for c in a["ground_truth"]]

def test_bfcl_pooled_corpus_from_raw(bfcl, bfcl_dir):
    "The pooled corpus is every distinct (name, description) of the raw function definitions."
    norm = lambda x: " ".join(str(x or "").split()).lower()
    raw = {(norm(fn["name"]), norm(fn.get("description"))) for c in BFCL_TIMING_POSITIVE + BFCL_TIMING_NEGATIVE
           for r in _jsonl(bfcl_dir / f"BFCL_v4_{c}.json") for fn in r["function"]}
    raw |= {(norm(fn["name"]), norm(fn.get("description"))) for f in (bfcl_dir / "multi_turn_func_doc").glob("*.json") for fn in _jsonl(f)}
    sel = bfcl.select("tool_selection")
    corpus = bfcl.candidates(sel[0])
    assert len(corpus) == len(raw) == sel[0].meta["n_candidates"] and len(corpus) > 2000
    assert all(bfcl.candidates(s) is corpus and set(s.relevant_tools) <= set(corpus.ids) for s in sel)

def test_bfcl_tool_ids_unique_and_objects(bfcl):
    names = Counter(t.name for t in bfcl.tools)
    for t in bfcl.tools:
        assert t.parameters["type"] == "object"
        assert (t.id == t.name) == (names[t.name] == 1)
    assert len(set(bfcl.tools.ids)) == len(bfcl.tools)

def test_bfcl_planning_from_answers(bfcl, bfcl_dir):
    for cat in BFCL_MULTI_TURN:
        for a in _jsonl(bfcl_dir / "possible_answer" / f"BFCL_v4_{cat}.json"):
            p = bfcl.sample(f"planning/{a['id']}")
            want = [parse_call(c)[0] for turn in a["ground_truth"] for c in turn]
            assert [bfcl.tools[t].name for t in p.tool_sequence] == want
            assert set(p.tool_sequence) <= set(p.candidate_tools)

def test_bfcl_splits_deterministic(bfcl):
    again = load_bfcl()
    assert [(s.id, s.split) for s in again.samples] == [(s.id, s.split) for s in bfcl.samples]
    by_id = {}
    for s in bfcl.samples: by_id.setdefault(s.meta["source_id"], set()).add(s.split)
    assert all(len(v) == 1 for v in by_id.values())          # a question is in one split in every challenge
    # hashed from the BFCL id, except where a group (one multi-turn question, near-identical texts) shares one split
    assert sum(s.split == split_of(s.meta["source_id"]) for s in bfcl.samples) / len(bfcl.samples) > 0.85
    c = Counter(s.split for s in bfcl.samples)
    assert 0.6 < c["train"] / len(bfcl.samples) < 0.8 and c["test"] > 0 and c["dev"] > 0

@pytest.fixture
def bfcl_copy(tmp_path, bfcl_dir):
    dst = tmp_path / "bfcl"
    shutil.copytree(bfcl_dir.parent, dst)
    return dst

def test_bfcl_corrupted_line_strict_and_lenient(bfcl, bfcl_copy):
    f = bfcl_copy / "data" / "BFCL_v4_multiple.json"
    lines = f.read_text().splitlines()
    lines[4] = lines[4][:50]                       # line 5: truncated JSON
    rec = json.loads(lines[9]); del rec["function"]  # line 10: a record without functions
    lines[9] = json.dumps(rec)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError) as e:
        load_bfcl(data_dir=bfcl_copy)
    assert e.value.line == 5 and e.value.file.endswith("BFCL_v4_multiple.json")
    ds = load_bfcl(data_dir=bfcl_copy, lenient=True)
    (rep,) = ds.skipped
    assert rep.file.endswith("BFCL_v4_multiple.json") and [ln for ln, _ in rep.skipped] == [5, 10]
    assert "function" in rep.skipped[1][1]
    assert len(ds.select("tool_selection")) == len(bfcl.select("tool_selection")) - 2
    assert len(ds.select("timing")) == len(bfcl.select("timing")) - 2
    assert any("2 record(s) skipped" in n for n in ds.notes)
    sm = ds.load_summary()
    assert sm["lenient"] and sm["n_skipped"] == 2 and [x["line"] for x in sm["skipped"]] == [5, 10]

def test_bfcl_answer_not_among_candidates_is_an_error(bfcl_copy):
    f = bfcl_copy / "data" / "possible_answer" / "BFCL_v4_multiple.json"
    rows = _jsonl(f); rows[0]["ground_truth"] = [{"no_such_function": {}}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RecordError, match="not among the sample's functions"):
        load_bfcl(data_dir=bfcl_copy)

def test_bfcl_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="bfcl"):
        load_bfcl(data_dir=tmp_path)

def test_bfcl_categories_option(bfcl):
    ds = load_bfcl(categories=["irrelevance", "multi_turn_base"])
    assert {ch: sum(v.values()) for ch, v in ds.counts().items()} == {"timing": 240, "planning": 200}
    assert all(not s.should_call_tool for s in ds.select("timing"))
    with pytest.raises(ValueError, match="unknown BFCL categories"): load_bfcl(categories=["simple_java"])

def test_bfcl_registry(bfcl):
    ds = get_dataset("bfcl")
    assert ds.counts() == bfcl.counts()

# ---------------------------------------------------------------- ToolBench

@pytest.fixture(scope="module")
def tb_dir(): return _dir("toolbench") / "solvable_queries"

@pytest.fixture(scope="module")
def tb(tb_dir): return load_toolbench()

def _tb_raw(tb_dir):
    return {g: json.load(open(tb_dir / "test_instruction" / f"{g}.json", encoding="utf-8")) for g in TOOLBENCH_GROUPS}

def test_toolbench_counts_and_gold_from_raw(tb, tb_dir):
    raw = _tb_raw(tb_dir)
    assert Counter(s.meta["group"] for s in tb.samples) == {g: len(v) for g, v in raw.items()}
    assert len(tb.samples) == 765 and tb.counts().keys() == {"tool_selection"}
    pairs = {(a["tool_name"], a["api_name"]) for v in raw.values() for r in v for a in r["api_list"]}
    assert set(tb.tools.ids) == {f"{t}::{a}" for t, a in pairs} and len(pairs) == 2479
    for g, v in raw.items():
        for r in v:
            s = tb.sample(f"{g}/{r['query_id']}")
            assert s.relevant_tools == list(dict.fromkeys(f"{t}::{a}" for t, a in r["relevant APIs"]))
            assert s.candidate_tools == []           # union setting: the whole library
    assert len(tb.candidates(tb.samples[0])) == 2479
    tb.check()

def test_toolbench_per_query(tb, tb_dir):
    pq = load_toolbench_per_query()
    assert pq.name == "toolbench_per_query" and get_dataset("toolbench_per_query").counts() == pq.counts()
    for g, v in _tb_raw(tb_dir).items():
        for r in v:
            s = pq.sample(f"{g}/{r['query_id']}")
            assert s.candidate_tools == list(dict.fromkeys(f"{a['tool_name']}::{a['api_name']}" for a in r["api_list"]))
            assert set(s.relevant_tools) <= set(s.candidate_tools)
            assert len(pq.candidates(s)) == len(s.candidate_tools)
            assert s.split == tb.sample(s.id).split        # split_of(s.id), unless grouped with a near text
    with pytest.raises(ValueError): load_toolbench(setting="everything")

def test_toolbench_corrupted_strict_and_lenient(tmp_path, tb_dir, tb):
    dst = tmp_path / "toolbench"; shutil.copytree(tb_dir.parent, dst)
    f = dst / "solvable_queries" / "test_instruction" / "G1_tool.json"
    rows = json.load(open(f, encoding="utf-8"))
    del rows[3]["relevant APIs"]
    text = json.dumps(rows, indent=2)
    f.write_text(text)
    # the line where item 3 starts, found independently: the 4th line that opens an item
    starts = [i + 1 for i, l in enumerate(text.splitlines()) if l == "  {"]
    with pytest.raises(RecordError) as e:
        load_toolbench(data_dir=dst)
    assert e.value.file.endswith("G1_tool.json") and e.value.line == starts[3] and "relevant APIs" in str(e.value)
    ds = load_toolbench(data_dir=dst, lenient=True)
    assert len(ds.samples) == len(tb.samples) - 1
    assert [ln for ln, _ in ds.skipped[0].skipped] == [starts[3]]
    # a cut document has lost an unknown number of records: an error naming file and line in both modes
    f.write_text(text[: len(text) // 2])
    for lenient in (False, True):
        with pytest.raises(DataFileError) as e:
            load_toolbench(data_dir=dst, lenient=lenient)
        assert e.value.file.endswith("G1_tool.json") and e.value.line == text[: len(text) // 2].count("\n") + 1

# ---------------------------------------------------------------- MetaTool

@pytest.fixture(scope="module")
def mt_dir(): return _dir("metatool") / "dataset"

@pytest.fixture(scope="module")
def mt(mt_dir): return load_metatool()

def test_metatool_counts_and_gold_from_raw(mt, mt_dir):
    rows = list(csv.DictReader(open(mt_dir / "data" / "all_clean_data.csv", encoding="utf-8", newline="")))
    multi = json.load(open(mt_dir / "data" / "multi_tool_query_golden.json", encoding="utf-8"))
    task1 = json.load(open(mt_dir / "tmp_dataset" / "Task1.json", encoding="utf-8"))
    des = json.load(open(mt_dir / "plugin_des.json", encoding="utf-8"))
    assert len(mt.tools) == len(des) == 199
    single = [s for s in mt.select("tool_selection") if s.meta["kind"] == "single_tool"]
    assert len(single) == len(rows) == 20614
    for s, r in zip(single, rows): assert s.relevant_tools == [r["Tool"]] and s.query == r["Query"].strip()
    two = [s for s in mt.select("tool_selection") if s.meta["kind"] == "multi_tool"]
    assert [s.relevant_tools for s in two] == [m["tool"] for m in multi] and len(two) == 497
    timing = mt.select("timing")
    assert [s.should_call_tool for s in timing] == [t["label"] == "positive" for t in task1]
    assert sum(s.should_call_tool for s in timing) == 520 and len(timing) == 1040
    assert all(not s.candidate_tools for s in mt.samples)
    mt.check()

def test_metatool_splits_by_query(mt):
    again = load_metatool()
    assert [s.split for s in again.samples] == [s.split for s in mt.samples]
    by_query = {}
    for s in mt.samples:
        q = s.message if s.challenge == "timing" else s.query
        by_query.setdefault(q, set()).add(s.split)
    assert all(len(v) == 1 for v in by_query.values())   # a query never straddles two splits

def test_metatool_corrupted_strict_and_lenient(tmp_path, mt_dir, mt):
    dst = tmp_path / "metatool"; shutil.copytree(mt_dir.parent, dst)
    f = dst / "dataset" / "data" / "all_clean_data.csv"
    lines = f.read_text(encoding="utf-8").splitlines()
    lines[6] = "Where can I book a flight?,NoSuchTool"        # line 7
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as e:
        load_metatool(data_dir=dst)
    assert e.value.line == 7 and e.value.file.endswith("all_clean_data.csv") and "NoSuchTool" in str(e.value)
    ds = load_metatool(data_dir=dst, lenient=True)
    assert len(ds.samples) == len(mt.samples) - 1
    assert [ln for ln, _ in ds.skipped[0].skipped] == [7]
    t1 = dst / "dataset" / "tmp_dataset" / "Task1.json"
    items = json.load(open(t1, encoding="utf-8")); items[0]["label"] = "maybe"
    t1.write_text(json.dumps(items, indent=2))
    with pytest.raises(RecordError, match="label"):
        load_metatool(data_dir=dst, parts=("timing",))

def test_data_dir_forms(tb_dir, mt_dir, monkeypatch):
    "data_dir may name the data set's folder or its parent; SAGE_BENCH_DATA_DIR is honoured."
    parent = tb_dir.parent.parent
    assert len(load_toolbench(data_dir=parent).samples) == 765
    assert len(load_toolbench(data_dir=tb_dir.parent).samples) == 765
    monkeypatch.setenv("SAGE_BENCH_DATA_DIR", str(mt_dir.parent.parent))
    assert len(load_metatool(parts=("multi",)).samples) == 497

def test_metatool_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="metatool"):
        load_metatool(data_dir=tmp_path)


def test_samples_name_their_published_subset(mt, tb, bfcl):
    "Every sample carries the subset its scores are also reported for (meta.subset): MetaTool single/multi, ToolBench groups, BFCL categories."
    sel = mt.select("tool_selection")
    assert all(s.meta["subset"] == s.id.split("/")[0] for s in sel) and {s.meta["subset"] for s in sel} == {"single", "multi"}
    assert {s.meta["subset"] for s in tb.samples} == {s.meta["group"] for s in tb.samples} <= set(TOOLBENCH_GROUPS)
    assert all(s.meta["subset"] == s.meta["category"] for s in bfcl.samples)

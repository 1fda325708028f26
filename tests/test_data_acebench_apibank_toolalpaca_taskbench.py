"""Loaders for ACEBench, API-Bank, ToolAlpaca and TaskBench: counts against numbers derived here from the raw
files, library consistency, deterministic splits, strict/lenient handling of corrupted copies."""
import json, re, shutil, warnings
from pathlib import Path

import pytest

from sage_bench.core import RecordError
from sage_bench.registry import find_data_dir, get_dataset
from sage_bench.data.acebench import load_acebench
from sage_bench.data.apibank import load_apibank
from sage_bench.data.toolalpaca import load_toolalpaca
from sage_bench.data.taskbench import load_taskbench

FIXTURES = Path(__file__).parent / "fixtures" / "taskbench"


def _need(name):
    p = find_data_dir(name, required=False)
    if p is None: pytest.skip(f"{name} data not available")
    return p


def _counts(ds):
    return {c: len(ds.select(c)) for c in ("timing", "tool_selection", "planning")}


def _lines(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


# ---------------------------------------------------------------- ACEBench
def _acebench_expected(root, min_candidates=2):
    folder = root / "data_all" / "data_en"
    exp = {"timing": 0, "tool_selection": 0, "planning": 0, "negatives": 0}
    for f in sorted(folder.glob("data_*.json")):
        cat = f.stem[len("data_"):]
        qs = _lines(f)
        if cat.startswith("normal_"):
            exp["timing"] += len(qs)
            exp["tool_selection"] += sum(len(q["function"]) >= min_candidates for q in qs)
        elif cat.startswith("special_"):
            exp["timing"] += len(qs); exp["negatives"] += len(qs)
        elif cat.startswith("agent_"):
            exp["planning"] += len(qs)
    return exp


def test_acebench_counts_from_raw_files():
    root = _need("acebench")
    ds = load_acebench()        # selection over the pooled corpus keeps every normal_* question
    exp, exp1 = _acebench_expected(root), _acebench_expected(root, 1)
    assert _counts(ds) == {"timing": exp["timing"], "tool_selection": exp1["tool_selection"], "planning": exp["planning"]}
    assert sum(not s.should_call_tool for s in ds.select("timing")) == exp["negatives"] == 150
    assert _counts(ds) == {"timing": 973, "tool_selection": 823, "planning": 50}  # SOURCE.md: 1,023 questions
    ps = get_dataset("acebench_per_sample")   # the per-sample task: own functions, at least 2
    assert _counts(ps) == {"timing": 0, "tool_selection": exp["tool_selection"], "planning": 0} and exp["tool_selection"] == 725
    assert len(load_acebench(min_candidates=1, selection="per_sample").select("tool_selection")) == exp1["tool_selection"]
    assert {s.meta["subset"] for s in ds.select("tool_selection")} == {s.meta["category"] for s in ds.select("tool_selection")}
    ds.check()


def test_acebench_ground_truth_from_answer_files():
    root = _need("acebench")
    ds = load_acebench(min_candidates=1, selection="per_sample")
    folder = root / "data_all" / "data_en"
    answers = {a["id"]: a for f in (folder / "possible_answer").glob("data_normal_*.json") for a in _lines(f)}
    for s in ds.select("tool_selection"):
        gt = answers[s.meta["source_id"]]["ground_truth"]
        gt = gt[0] if isinstance(gt, list) else gt
        names = {ds.tools[t].name for t in s.relevant_tools}
        assert names == {k if k in names else re.sub(r"_\d+$", "", k) for k in gt}, s.id
        assert set(s.relevant_tools) <= set(s.candidate_tools) and s.meta["n_candidates"] == len(s.candidate_tools)
    ms = {a["id"]: a["mile_stone"] for a in _lines(folder / "possible_answer" / "data_agent_multi_step.json")}
    p = load_acebench().sample("agent_multi_step_0/planning")
    assert len(p.steps) == len(ms["agent_multi_step_0"])


def test_acebench_tool_ids_unique_and_variants_resolved():
    _need("acebench")
    ds = load_acebench()
    assert len(set(ds.tools.ids)) == len(ds.tools)
    variants = [t for t in ds.tools if "#" in t.id]
    assert variants, "ACEBench has names with several definitions"
    # every candidate list of a sample's own functions points at definitions whose names are unique within the sample
    for s in [*load_acebench(selection="per_sample").samples, *(s for s in ds.samples if s.challenge != "tool_selection")]:
        names = [ds.tools[t].name for t in s.candidate_tools]
        assert len(names) == len(set(names)), s.id


def test_acebench_corrupted_copy(tmp_path):
    root = _need("acebench")
    dst = tmp_path / "acebench"
    shutil.copytree(root / "data_all", dst / "data_all")
    f = dst / "data_all" / "data_en" / "data_special_irrelevant.json"
    f.chmod(0o644)
    lines = f.read_text(encoding="utf-8").splitlines(True)
    lines[2] = '{"id": "special_irrelevant_2", "question": broken\n'
    lines[4] = json.dumps({"id": "special_irrelevant_4", "question": "user: hi"}) + "\n"  # no 'function'
    f.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(RecordError) as e:
        load_acebench(data_dir=dst)
    assert e.value.line == 3 and "data_special_irrelevant.json" in str(e.value)
    ds = load_acebench(data_dir=dst, lenient=True)
    rep = {Path(r.file).name: r for r in ds.skipped}
    assert [ln for ln, _ in rep["data_special_irrelevant.json"].skipped] == [3, 5]
    assert sum(not s.should_call_tool for s in ds.select("timing")) == 148
    assert any("skipped" in n for n in ds.notes)


# ---------------------------------------------------------------- API-Bank
def _apibank_expected(root, min_candidates=2):
    td = root / "test-data"
    def prompt_apis(instr):
        return [l for l in instr.split("API descriptions:", 1)[1].splitlines() if l.strip().startswith("{")]
    l1 = json.load(open(td / "level-1-api.json"))
    l2 = json.load(open(td / "level-2-api.json"))
    sel = sum(len(prompt_apis(x["instruction"])) >= min_candidates for x in l1)
    sel += sum(not x["expected_output"].startswith("API-Request: [ToolSearcher") for x in l2)
    pos = neg = 0
    for f in sorted((root / "lv1-lv2-samples").glob("*/*.jsonl")):
        roles = [json.loads(l)["role"] for l in open(f) if l.strip()]
        for i, r in enumerate(roles):
            if r != "User": continue
            nxt = roles[i + 1:]
            ans = nxt[:nxt.index("User")] if "User" in nxt else nxt
            if not ans: continue
            if "API" in ans: pos += 1
            else: neg += 1
    return {"timing": pos + neg, "tool_selection": sel, "planning": len(json.load(open(td / "level-3.json")))}, pos


def test_apibank_counts_from_raw_files():
    root = _need("apibank")
    ds = load_apibank()
    exp, pos = _apibank_expected(root)
    exp1 = _apibank_expected(root, 1)[0]
    assert _counts(ds) == {**exp, "tool_selection": exp1["tool_selection"]}      # pooled corpus: every level-1 step
    assert _counts(load_apibank(selection="per_sample")) == {"timing": 0, "tool_selection": exp["tool_selection"], "planning": 0}
    assert sum(s.should_call_tool for s in ds.select("timing")) == pos
    assert exp["tool_selection"] == 294 + 90 and exp["planning"] == 50  # SOURCE.md: 399 level-1 steps, 135 level-2
    l3 = json.load(open(root / "test-data" / "level-3.json"))
    assert sum(len(s.steps) for s in ds.select("planning")) == sum(a["api_name"] != "ToolSearcher" for x in l3 for a in x["apis"]) == 131
    assert len(load_apibank(min_candidates=1, selection="per_sample").select("tool_selection")) == exp1["tool_selection"] == 399 + 90
    ds.check()


def test_apibank_corrupted_copy(tmp_path):
    root = _need("apibank")
    dst = tmp_path / "apibank"
    shutil.copytree(root, dst)
    for p in dst.rglob("*"): p.chmod(0o755 if p.is_dir() else 0o644)
    f = dst / "lv1-lv2-samples" / "level-1-given-desc" / "AddAgenda-level-1-1.jsonl"
    lines = f.read_text(encoding="utf-8").splitlines(True)
    lines[1] = '{"role": "AI", "text": \n'
    f.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(RecordError) as e:
        load_apibank(data_dir=dst)
    assert e.value.line == 2 and "AddAgenda-level-1-1.jsonl" in str(e.value)
    ds = load_apibank(data_dir=dst, lenient=True)
    assert ds.skipped and any("AddAgenda-level-1-1.jsonl" in r.file for r in ds.skipped)
    # a record with a missing field in a JSON-array file: the error names the line where the item starts
    l3 = dst / "test-data" / "level-3.json"
    items = json.loads(l3.read_text())
    del items[1]["requirement"]
    l3.write_text(json.dumps(items, indent=4))
    f.write_text(f.read_text().replace('{"role": "AI", "text": \n', '{"role": "AI", "text": "ok"}\n'))
    with pytest.raises(RecordError) as e:
        load_apibank(data_dir=dst)
    assert "level-3.json" in str(e.value) and "requirement" in str(e.value)
    assert l3.read_text().splitlines()[e.value.line - 1].strip() == "{"
    ds2 = load_apibank(data_dir=dst, lenient=True)
    assert len(ds2.select("planning")) == 49
    rep = [r for r in ds2.skipped if r.file.endswith("level-3.json")][0]
    line = rep.skipped[0][0]
    assert l3.read_text().splitlines()[line - 1].strip() == "{"


# ---------------------------------------------------------------- ToolAlpaca
def _toolalpaca_expected(root, min_candidates=2):
    sel = plan = 0
    for st in ("simulated", "real"):
        for x in json.load(open(root / "data" / f"eval_{st}.json")):
            fns = [k for k in x["Function_Description"] if k != "components"]
            for g in x["Golden_Answers"]:
                calls = [a for a in g if a["Action"] != "getDetails"]
                used = {a["Action"].replace("[Optional]", "") for a in calls}
                n_cand = len(set(fns) | used)
                sel += n_cand >= min_candidates
                plan += len(calls) >= 2
    return {"timing": 0, "tool_selection": sel, "planning": plan}


def test_toolalpaca_counts_from_raw_files():
    root = _need("toolalpaca")
    ds = load_toolalpaca()      # pooled corpus: every instruction is a selection sample
    assert _counts(ds) == {**_toolalpaca_expected(root), "tool_selection": 100 + 114}  # SOURCE.md instruction counts
    assert _counts(load_toolalpaca(selection="per_sample")) == {**_toolalpaca_expected(root), "timing": 0, "planning": 0}
    assert len(load_toolalpaca(min_candidates=1, selection="per_sample").select("tool_selection")) == 100 + 114
    assert {s.meta["subset"] for s in ds.select("tool_selection")} == {"simulated", "real"}
    for s in ds.select("planning"):
        assert len(s.steps) >= 2 and all(t in s.candidate_tools for t in s.tool_sequence)
    ds.check()


def test_toolalpaca_corrupted_copy(tmp_path):
    root = _need("toolalpaca")
    dst = tmp_path / "toolalpaca" / "data"
    dst.mkdir(parents=True)
    for f in ("eval_simulated.json", "eval_real.json"): shutil.copy(root / "data" / f, dst / f)
    items = json.load(open(dst / "eval_real.json"))
    items[2]["Golden_Answers"] = items[2]["Golden_Answers"][:-1]  # one answer short
    (dst / "eval_real.json").chmod(0o644)
    (dst / "eval_real.json").write_text(json.dumps(items, indent=2))
    with pytest.raises(RecordError) as e:
        load_toolalpaca(data_dir=dst.parent)
    assert "eval_real.json" in str(e.value) and e.value.line is not None
    ds = load_toolalpaca(data_dir=dst.parent, lenient=True, min_candidates=1)
    assert len(ds.select("tool_selection")) == 214 - len(items[2]["Instructions"])
    assert ds.skipped[0].skipped


# ---------------------------------------------------------------- TaskBench
def test_taskbench_without_labels_has_tools_and_no_samples():
    root = _need("taskbench")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = load_taskbench()
    n_tools = sum(len(json.load(open(root / f"data_{d}" / "tool_desc.json"))["nodes"]) for d in ("huggingface", "multimedia", "dailylifeapis"))
    assert len(ds.tools) == n_tools == 103 and ds.samples == []
    assert any("no samples" in n for n in ds.notes) and any("data.json" in str(x.message) for x in w)
    with pytest.raises(FileNotFoundError, match="data.json"):
        load_taskbench(require_labels=True)


def test_taskbench_with_labelled_fixture():
    _need("taskbench")
    ds = load_taskbench(labels_dir=FIXTURES, domains=("huggingface", "dailylifeapis"))
    recs = [r for d in ("huggingface", "dailylifeapis") for r in _lines(FIXTURES / f"data_{d}" / "data.json")]
    def nodes(r):
        v = r.get("task_nodes", r.get("tool_nodes"))
        return json.loads(v) if isinstance(v, str) else v
    assert len(ds.select("tool_selection")) == len(recs)
    assert len(ds.select("planning")) == sum(len(nodes(r)) >= 2 for r in recs) == 3
    chain = ds.sample("huggingface/30123865/planning")  # stored as JSON-encoded tool_* strings
    assert [ds.tools[t].name for t in chain.tool_sequence] == [n["task"] for n in nodes(recs[1])]
    assert [s.depends_on for s in chain.steps] == [[], [0], [1]]
    sel = ds.sample("huggingface/57993067/selection")
    assert sel.relevant_tools == ["huggingface/Object Detection"] and len(sel.candidate_tools) == 23
    ds.check()


def test_taskbench_corrupted_labels(tmp_path):
    _need("taskbench")
    d = tmp_path / "data_huggingface"; d.mkdir()
    lines = (FIXTURES / "data_huggingface" / "data.json").read_text().splitlines(True)
    bad = json.loads(lines[2]); bad["task_nodes"] = [{"task": "No Such Tool", "arguments": []}]
    lines[1] = "{not json\n"; lines[2] = json.dumps(bad) + "\n"
    (d / "data.json").write_text("".join(lines))
    with pytest.raises(RecordError) as e:
        load_taskbench(labels_dir=tmp_path, domains=("huggingface",))
    assert e.value.line == 2 and "data.json" in str(e.value)
    ds = load_taskbench(labels_dir=tmp_path, domains=("huggingface",), lenient=True)
    assert len(ds.select("tool_selection")) == 1 and [ln for ln, _ in ds.skipped[0].skipped] == [2, 3]


# ---------------------------------------------------------------- all four
@pytest.mark.parametrize("name,loader", [("acebench", load_acebench), ("apibank", load_apibank), ("toolalpaca", load_toolalpaca)])
def test_splits_deterministic_and_registered(name, loader):
    _need(name)
    a, b = loader(), loader()
    assert [(s.id, s.split) for s in a.samples] == [(s.id, s.split) for s in b.samples]
    assert {s.split for s in a.samples} == {"train", "dev", "test"}
    frac = sum(s.split == "train" for s in a.samples) / len(a.samples)
    assert (0.45 if name == "toolalpaca" else 0.55) < frac < 0.85     # ToolAlpaca splits whole toolsets (about 50 groups)
    reg = get_dataset(name, cache=False)
    assert len(reg.samples) == len(a.samples) and reg.tools.fingerprint == a.tools.fingerprint
    assert reg.notes and all(isinstance(n, str) for n in reg.notes)

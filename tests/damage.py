"""Damaged copies of the data sets, made from each data set's own files, for tests/test_damaged_data.py.

A copy is the data set's folder rebuilt in a temporary directory from symbolic links to the original files, except one
file, which is written damaged in one way (`Case.kind`). `cases()` lists every case of every data set that is present;
`make(case, tmp)` builds the copy and returns its root. Each case says what a loader must do with it:

* `level == "file"`: the whole file is damaged (not UTF-8, empty, a cut or broken JSON document, broken CSV quoting, no
  records): a `DataFileError` naming the file, in strict and lenient mode alike;
* `level == "record"`: one record is damaged: a `RecordError` naming the file and `line` when strict, a skip counted
  with that file and line when lenient.

The expected lines are computed here from the damaged text itself (JSON is re-written with `indent=2`, so a record
starts on a line indented by two spaces per level; CSV rows are counted with the `csv` module), not by the loaders.
"""
from __future__ import annotations

import copy, csv, dataclasses, io, json, os, warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from sage_bench.core import resources_dir
from sage_bench.registry import find_data_dir

BIG = "x" * (10 << 20)          # a 10 MiB value
FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class FileSpec:
    "How to damage one file of a data set. Mutators change a record (dict, or CSV row as dict) in place."
    rel: str                                  # path inside the data set folder
    fmt: str                                  # jsonl | array | object | csv
    key: Optional[str] = None                 # array: the records are the array under this key of a top-level object
    pick: Callable[[Any], bool] = lambda r: True   # which record to damage: the first match from the third record on
    # object files (members are records): wrong/big map the value to a new one; unknown() gives a new key
    wrong: Optional[Callable] = None          # give a field the wrong type
    missing: Optional[Callable] = None        # remove a field the loader needs
    unknown: Optional[Callable] = None        # name a tool (or id) that does not exist
    big: Optional[Callable] = None            # put BIG into a field
    dup: bool = False                         # the records carry ids: a repeated record is a repeated id
    one_line: bool = False                    # CSV: every row is one line in the source
    load: dict = field(default_factory=dict)  # loader options that keep the load small (the damaged file is always read)


@dataclass
class Case:
    dataset: str           # the registered loader name
    src: Path              # the data set folder copied
    spec: FileSpec
    kind: str
    level: str = "record"  # "record" or "file"
    build: Callable[[], tuple] = None   # -> (damaged text or bytes, the line the error or skip must name: int, (lo, hi) or None)

    @property
    def rel(self) -> str: return self.spec.rel

    @property
    def id(self) -> str: return f"{self.dataset}:{self.rel}:{self.kind}"


# ---------------------------------------------------------------- text helpers
def _lines_at(text: str, depth: int) -> list[int]:
    "Lines (1-based) where an element of a container at `depth` starts, in JSON written with indent=2."
    pre = " " * (2 * depth)
    return [i for i, l in enumerate(text.split("\n"), 1)
            if l.startswith(pre) and len(l) > len(pre) and l[len(pre)] not in " ]}"]

def _nth(items: list, pick) -> int:
    "Index of the record to damage: the first one from the third on that `pick` accepts."
    start = min(2, len(items) - 1)
    for k in list(range(start, len(items))) + list(range(start)):
        try:
            if pick(items[k]): return k
        except (KeyError, TypeError, IndexError, AttributeError):
            continue
    raise LookupError("no record to damage")

def _bad_utf8(text: str, line: int) -> bytes:
    "The text with a byte that is not UTF-8 in the middle of `line`."
    lines = text.split("\n")
    l = lines[line - 1]
    b = [x.encode("utf-8") for x in lines]
    b[line - 1] = l[: len(l) // 2].encode("utf-8") + b"\xff\xfe" + l[len(l) // 2:].encode("utf-8")
    return b"\n".join(b)


# ---------------------------------------------------------------- per format
# Each `_<format>_cases(mk, text, spec)` calls `mk(kind, level, build)` once per damage; `build()` makes the damaged
# text and the line the loader must name, only when the case runs (a 10 MiB copy is not kept in memory for long).

def _jsonl_cases(mk, text: str, spec: FileSpec):
    lines = text.split("\n")
    recs = [(i, l) for i, l in enumerate(lines) if l.strip()]
    i = recs[_nth([json.loads(l) for _, l in recs], spec.pick)][0]
    ln = i + 1
    def with_line(new: str, insert: bool = False) -> str:
        return "\n".join(lines[:i] + ([lines[i]] if insert else []) + [new] + lines[i + 1:])
    def mutated(fn) -> str:
        r = json.loads(lines[i]); fn(r); return with_line(json.dumps(r, ensure_ascii=False))
    mk("invalid_utf8", "file", lambda: (_bad_utf8(text, ln), ln))
    mk("empty", "file", lambda: (b"", None))
    mk("truncated_line", "record", lambda: (with_line(lines[i][: len(lines[i]) // 2]), ln))
    mk("trailing_comma", "record", lambda: (with_line(lines[i] + ","), ln))
    for kind, fn in (("wrong_type", spec.wrong), ("missing_field", spec.missing), ("unknown_tool", spec.unknown), ("big_field", spec.big)):
        if fn: mk(kind, "record", lambda fn=fn: (mutated(fn), ln))
    if spec.dup: mk("duplicate_id", "record", lambda: (with_line(lines[i], insert=True), ln + 1))


def _array_cases(mk, text: str, spec: FileSpec):
    doc = json.loads(text)
    items = doc[spec.key] if spec.key else doc
    depth = 2 if spec.key else 1
    k = _nth(items, spec.pick)
    def dump(new_items) -> str:
        d = dict(doc, **{spec.key: new_items}) if spec.key else new_items
        return json.dumps(d, indent=2, ensure_ascii=False) + "\n"
    clean = dump(items)
    start = _lines_at(clean, depth)[k]       # the line where record k starts; the next line is its first field
    ls = clean.split("\n")
    def mutated(fn):
        new = copy.deepcopy(items); fn(new[k]); t = dump(new)
        return t, _lines_at(t, depth)[k]
    def duplicated():
        t = dump(items[: k + 1] + [items[k]] + items[k + 1:])
        return t, _lines_at(t, depth)[k + 1]
    cut = clean[: len(clean) // 2].rstrip()
    body = clean.rstrip()
    tc = body[:-1].rstrip() + ",\n" + body[-1] + "\n"
    mk("invalid_utf8", "file", lambda: (_bad_utf8(clean, start + 1), start + 1))
    mk("empty", "file", lambda: (b"", None))
    mk("truncated_line", "file", lambda: ("\n".join(ls[:start] + [ls[start][: len(ls[start]) // 2]] + ls[start + 1:]), (start + 1, start + 2)))
    mk("cut_array", "file", lambda: (cut, cut.count("\n") + 1))
    mk("trailing_comma", "file", lambda: (tc, tc.rstrip().count("\n") + 1))
    mk("no_records", "file", lambda: (dump([]), None))
    mk("wrong_document", "file", lambda: (json.dumps([items[:3]]) if spec.key else json.dumps({"records": items[:3]}), 1))
    for kind, fn in (("wrong_type", spec.wrong), ("missing_field", spec.missing), ("unknown_tool", spec.unknown), ("big_field", spec.big)):
        if fn: mk(kind, "record", lambda fn=fn: mutated(fn))
    if spec.dup: mk("duplicate_id", "record", duplicated)


def _object_cases(mk, text: str, spec: FileSpec):
    doc = json.loads(text)
    keys = list(doc)
    k = _nth([(key, doc[key]) for key in keys], spec.pick)
    def dump(d) -> str: return json.dumps(d, indent=2, ensure_ascii=False) + "\n"
    clean = dump(doc)
    ln = _lines_at(clean, 1)[k]              # one member per line: member k is on line k + 2
    ls = clean.split("\n")
    cut = clean[: len(clean) // 2].rstrip()
    body = clean.rstrip()
    tc = body[:-1].rstrip() + ",\n" + body[-1] + "\n"
    mk("invalid_utf8", "file", lambda: (_bad_utf8(clean, ln), ln))
    mk("empty", "file", lambda: (b"", None))
    mk("truncated_line", "file", lambda: ("\n".join(ls[: ln - 1] + [ls[ln - 1][: len(ls[ln - 1]) // 2]] + ls[ln:]), (ln, ln + 1)))
    mk("cut_array", "file", lambda: (cut, cut.count("\n") + 1))
    mk("trailing_comma", "file", lambda: (tc, tc.rstrip().count("\n") + 1))
    mk("no_records", "file", lambda: ("{}\n", None))
    mk("wrong_document", "file", lambda: (json.dumps(keys[:3]), 1))
    for kind, fn in (("wrong_type", spec.wrong), ("big_field", spec.big)):
        if fn: mk(kind, "record", lambda fn=fn: (dump({**doc, keys[k]: fn(doc[keys[k]])}), ln))
    if spec.unknown: mk("unknown_tool", "record", lambda: (dump({**doc, spec.unknown(): doc[keys[k]]}), len(keys) + 2))
    if spec.dup: mk("duplicate_id", "record", lambda: ("\n".join(ls[:ln] + [ls[ln - 1]] + ls[ln:]), ln + 1))


def _csv_rows(text: str) -> tuple[list[str], list[tuple[int, int, list[str]]]]:
    "(header, [(first line, last line, row)]) of a CSV text."
    rd = csv.reader(io.StringIO(text, newline=""), strict=True)
    head, rows = next(rd), []
    while True:
        first = rd.line_num + 1
        try: row = next(rd)
        except StopIteration: break
        if row: rows.append((first, rd.line_num, row))
    return head, rows

def _csv_line(row: list[str]) -> str:
    s = io.StringIO(); csv.writer(s, lineterminator="\n").writerow(row); return s.getvalue().rstrip("\n")

def _csv_cases(mk, text: str, spec: FileSpec):
    head, rows = _csv_rows(text)
    ls = text.split("\n")
    first, last, row = rows[_nth([dict(zip(head, r)) for _, _, r in rows], spec.pick)]
    def replace(new: str, keep: bool = False) -> str:
        return "\n".join(ls[: first - 1] + (ls[first - 1: last] if keep else []) + [new] + ls[last:])
    def mutated(fn) -> str:
        d = dict(zip(head, row)); fn(d); return replace(_csv_line([d[h] for h in head]))
    mk("invalid_utf8", "file", lambda: (_bad_utf8(text, first), first))
    mk("empty", "file", lambda: (b"", None))
    mk("no_records", "file", lambda: (ls[0] + "\n", None))
    mk("wrong_header", "file", lambda: ("\n".join([",".join(h + "?" for h in head)] + ls[1:]), 1))
    mk("broken_quote", "file", lambda: ("\n".join(ls[: first - 1] + ['"' + ls[first - 1]] + ls[first:]), first))
    mk("missing_column", "record", lambda: (replace(_csv_line(row[:-1])), first))
    mk("extra_column", "record", lambda: (replace(_csv_line(row + ["extra"])), first))
    mk("big_field", "record", lambda: (replace(_csv_line([BIG] + row[1:])), first))
    if first == last: mk("truncated_line", "record", lambda: (replace(ls[first - 1][: len(ls[first - 1]) // 3]), first))
    if spec.one_line:   # a quote opened in one row and closed before the delimiter of the next: two rows read as one
        nxt = ls[last]
        mk("merged_rows", "file", lambda: ("\n".join(ls[: first - 1] + ['"' + ls[first - 1], nxt.replace(",", '",', 1)] + ls[last + 1:]), first))
    for kind, fn in (("wrong_type", spec.wrong), ("unknown_tool", spec.unknown)):
        if fn: mk(kind, "record", lambda fn=fn: (mutated(fn), first))
    if spec.dup: mk("duplicate_id", "record", lambda: (replace(_csv_line(row), keep=True), last + 1))


_FORMATS = {"jsonl": _jsonl_cases, "array": _array_cases, "object": _object_cases, "csv": _csv_cases}


# ---------------------------------------------------------------- the data sets
def _set(d: dict, k, v): d[k] = v
def _del(d: dict, k): del d[k]
def _first_key(d: dict): return next(iter(d))

def _specs() -> dict[str, tuple[Optional[Path], list[FileSpec]]]:
    ace = "data_all/data_en/"
    ab = "lv1-lv2-samples/level-1-given-desc/AddAgenda-level-1-1.jsonl"
    return {
        "sage": (resources_dir() / "sage", [
            FileSpec("tools.jsonl", "jsonl", wrong=lambda r: _set(r, "parameters", "none"), missing=lambda r: _del(r, "description"),
                     big=lambda r: _set(r, "description", BIG), dup=True),
            FileSpec("samples.jsonl", "jsonl", pick=lambda r: r["challenge"] == "tool_selection",
                     wrong=lambda r: _set(r, "relevant_tools", "none"), missing=lambda r: _del(r, "query"),
                     unknown=lambda r: _set(r, "relevant_tools", ["no.such_tool"]), big=lambda r: _set(r, "query", BIG), dup=True),
        ]),
        "acebench": (find_data_dir("acebench", required=False), [
            FileSpec(ace + "data_normal_single_turn_single_function.json", "jsonl", wrong=lambda r: _set(r, "function", "none"),
                     missing=lambda r: _del(r, "question"), big=lambda r: _set(r, "question", "user: " + BIG), dup=True),
            FileSpec(ace + "possible_answer/data_normal_single_turn_single_function.json", "jsonl",
                     wrong=lambda r: _set(r, "ground_truth", 42), missing=lambda r: _del(r, "ground_truth"),
                     unknown=lambda r: _set(r, "ground_truth", {"no_such_function": {}}),
                     big=lambda r: _set(r["ground_truth"], _first_key(r["ground_truth"]), {"note": BIG}), dup=True),
            FileSpec(ace + "possible_answer/data_agent_multi_step.json", "jsonl", wrong=lambda r: _set(r, "mile_stone", 42),
                     missing=lambda r: _del(r, "mile_stone"), unknown=lambda r: _set(r, "mile_stone", ["[no_such_function(a=1)]"])),
        ]),
        "apibank": (find_data_dir("apibank", required=False), [
            FileSpec("test-data/level-1-api.json", "array", pick=lambda r: r["instruction"].count('{"name"') >= 2,
                     wrong=lambda r: _set(r, "instruction", 42), missing=lambda r: _del(r, "expected_output"),
                     unknown=lambda r: _set(r, "expected_output", "API-Request: [NoSuchApi(key='x')]"),
                     big=lambda r: _set(r, "input", BIG), dup=True),
            FileSpec("test-data/level-3.json", "array", wrong=lambda r: _set(r, "apis", "none"), missing=lambda r: _del(r, "requirement"),
                     unknown=lambda r: _set(next(a for a in r["apis"] if a["api_name"] != "ToolSearcher"), "api_name", "NoSuchApi"),
                     big=lambda r: _set(r, "requirement", BIG)),
            FileSpec(ab, "jsonl", pick=lambda r: r["role"] == "API", wrong=lambda r: _set(r, "result", "none"),
                     missing=lambda r: _del(r, "role"), unknown=lambda r: _set(r, "api_name", "NoSuchApi"), big=lambda r: _set(r, "api_name", BIG)),
            FileSpec("data/all_apis.csv", "csv", wrong=lambda r: _set(r, "api_info", "description = 'not closed"), dup=True),
        ]),
        "toolalpaca": (find_data_dir("toolalpaca", required=False), [
            FileSpec("data/eval_real.json", "array", pick=lambda r: r["Golden_Answers"][0][0]["Action"] != "getDetails",
                     wrong=lambda r: _set(r, "Instructions", "none"), missing=lambda r: _del(r, "Golden_Answers"),
                     unknown=lambda r: _set(r["Golden_Answers"][0][0], "Action", "noSuchFunction"),
                     big=lambda r: r["Instructions"].__setitem__(0, BIG), dup=True),
        ]),
        "taskbench": (find_data_dir("taskbench", required=False), [
            FileSpec("data_huggingface/tool_desc.json", "array", key="nodes", wrong=lambda r: _set(r, "input-type", "text"),
                     missing=lambda r: _del(r, "id"), big=lambda r: _set(r, "desc", BIG), dup=True, load={"domains": ("huggingface",)}),
            FileSpec("data_huggingface/user_requests.json", "jsonl", wrong=lambda r: _set(r, "user_request", 42),
                     missing=lambda r: _del(r, "user_request"), big=lambda r: _set(r, "user_request", BIG), load={"domains": ("huggingface",)}),
        ]),
        "taskbench_labels": (FIXTURES / "taskbench" if (FIXTURES / "taskbench").is_dir() and find_data_dir("taskbench", required=False) else None, [
            FileSpec("data_huggingface/data.json", "jsonl", wrong=lambda r: _set(r, "task_nodes", 5), missing=lambda r: _del(r, "instruction"),
                     unknown=lambda r: _set(r, "task_nodes", [{"task": "No Such Tool", "arguments": []}]),
                     big=lambda r: _set(r, "instruction", BIG), dup=True),
        ]),
        "bfcl": (find_data_dir("bfcl", required=False), [
            FileSpec("data/BFCL_v4_multiple.json", "jsonl", wrong=lambda r: _set(r, "question", "none"), missing=lambda r: _del(r, "function"),
                     big=lambda r: _set(r["question"][0][0], "content", BIG), dup=True, load={"categories": ["multiple"]}),
            FileSpec("data/possible_answer/BFCL_v4_multiple.json", "jsonl", wrong=lambda r: _set(r, "ground_truth", "none"),
                     missing=lambda r: _del(r, "ground_truth"), unknown=lambda r: _set(r, "ground_truth", [{"no_such_function": {}}]),
                     big=lambda r: _set(r["ground_truth"][0], _first_key(r["ground_truth"][0]), {"note": [BIG]}), dup=True,
                     load={"categories": ["multiple"]}),
            FileSpec("data/BFCL_v4_multi_turn_base.json", "jsonl", wrong=lambda r: _set(r, "involved_classes", "GorillaFileSystem"),
                     missing=lambda r: _del(r, "question"), big=lambda r: _set(r["question"][0][0], "content", BIG), dup=True,
                     load={"categories": ["multi_turn_base"]}),
            FileSpec("data/possible_answer/BFCL_v4_multi_turn_base.json", "jsonl", wrong=lambda r: _set(r, "ground_truth", 5),
                     missing=lambda r: _del(r, "ground_truth"), unknown=lambda r: r["ground_truth"][0].__setitem__(0, "no_such_function(a=1)"),
                     big=lambda r: r["ground_truth"][0].__setitem__(0, f"cd(folder='{BIG}')"), dup=True, load={"categories": ["multi_turn_base"]}),
            FileSpec("data/multi_turn_func_doc/math_api.json", "jsonl", wrong=lambda r: _set(r, "parameters", "none"),
                     missing=lambda r: _del(r, "name"), big=lambda r: _set(r, "description", BIG), dup=True,
                     load={"categories": ["multi_turn_base"]}),
        ]),
        "toolbench": (find_data_dir("toolbench", required=False), [
            FileSpec("solvable_queries/test_instruction/G1_tool.json", "array", wrong=lambda r: _set(r, "api_list", "none"),
                     missing=lambda r: _del(r, "query"), unknown=lambda r: _set(r, "relevant APIs", [["NoSuchTool", "NoSuchApi"]]),
                     big=lambda r: _set(r, "query", BIG), dup=True, load={"groups": ["G1_tool"]}),
            FileSpec("solvable_queries/test_query_ids/G1_tool.json", "object", unknown=lambda: "999999999", dup=True,
                     load={"groups": ["G1_tool"]}),
        ]),
        "metatool": (find_data_dir("metatool", required=False), [
            FileSpec("dataset/plugin_des.json", "object", wrong=lambda v: 42, big=lambda v: BIG, dup=True, load={"parts": ("multi",)}),
            FileSpec("dataset/tmp_dataset/Task1.json", "array", pick=lambda r: r["label"] == "positive",
                     wrong=lambda r: _set(r, "label", 1), missing=lambda r: _del(r, "query"),
                     unknown=lambda r: _set(r, "tool", "NoSuchTool"), big=lambda r: _set(r, "query", BIG), load={"parts": ("timing",)}),
            FileSpec("dataset/data/all_clean_data.csv", "csv", pick=lambda r: '"' not in r["Query"] and "," not in r["Query"],
                     unknown=lambda r: _set(r, "Tool", "NoSuchTool"), one_line=True, load={"parts": ("single",)}),
            FileSpec("dataset/data/multi_tool_query_golden.json", "array", wrong=lambda r: _set(r, "tool", "FinanceTool"),
                     missing=lambda r: _del(r, "query"), unknown=lambda r: _set(r, "tool", ["NoSuchTool", "NewsTool"]),
                     big=lambda r: _set(r, "query", BIG), load={"parts": ("multi",)}),
        ]),
    }


def cases() -> list[Case]:
    "Every damage case of every data set that is present (toolbench's also for toolbench_per_query)."
    out = []
    for dataset, (src, files) in _specs().items():
        if src is None: continue
        for spec in files:
            def mk(kind, level, build, dataset=dataset, spec=spec, src=src): out.append(Case(dataset, src, spec, kind, level, build))
            _FORMATS[spec.fmt](mk, (src / spec.rel).read_text(encoding="utf-8"), spec)
    return out + [dataclasses.replace(c, dataset="toolbench_per_query") for c in out if c.dataset == "toolbench"]


def _loader(name: str):
    "The loader function of a data set, imported directly (not through the registry, which imports every method too)."
    import importlib
    module, fn = {"sage": ("sage", "load_sage"), "acebench": ("acebench", "load_acebench"), "apibank": ("apibank", "load_apibank"),
                  "toolalpaca": ("toolalpaca", "load_toolalpaca"), "taskbench": ("taskbench", "load_taskbench"),
                  "bfcl": ("bfcl", "load_bfcl"), "toolbench": ("toolbench", "load_toolbench"),
                  "toolbench_per_query": ("toolbench", "load_toolbench_per_query"), "metatool": ("metatool", "load_metatool")}[name]
    return getattr(importlib.import_module(f"sage_bench.data.{module}"), fn)


def load(case: Case, root: Optional[Path], lenient: bool):
    "Load a copy (`root`; None: the data set as published) with the case's loader and options."
    kw = dict(case.spec.load)
    name = case.dataset
    if name == "taskbench_labels":
        name, kw = "taskbench", {"labels_dir": root or case.src, "domains": ("huggingface",)}
        root = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # taskbench without labels warns that it has no samples
        return _loader(name)(data_dir=root, lenient=lenient, **kw)


def make(case: Case, tmp: Path) -> tuple[Path, Path, Any]:
    "Build the damaged copy under `tmp` (links to the original files, the damaged file written out): (root, damaged file, line)."
    root = tmp / case.src.name
    for d, _, files in os.walk(case.src):
        rel = Path(d).relative_to(case.src)
        (root / rel).mkdir(parents=True, exist_ok=True)
        for f in files: os.symlink(Path(d) / f, root / rel / f)
    target = root / case.rel
    data, line = case.build()
    target.unlink()
    target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return root, target, line

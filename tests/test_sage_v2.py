"""Tests of the built-in `sage` data set, version 2 (issue 15): the library lint, sizes, stratified splits, no leaks between
splits, type-consistent planning graphs without no-op updates or create-then-delete, acceptable sets, loader round trip."""
from collections import Counter

import pytest

from sage_bench.core import text_of
from sage_bench.data.sage_v2 import (LEAK_CHAR_COSINE, SAGE_V2_VERSION, SPLIT_RATIOS, check_plan, char_tfidf, generate_sage_v2,
                                     load_sage_v2, shipped_dir, write_sage_v2)
from sage_bench.data.sage_v2_library import MaterialError, build_library, lint_library, load_material

SIZE_FLOORS = {"tools": 1500, "categories": 50, "tool_selection": 450, "planning": 300, "timing": 300}   # test-split floors of issue 15


@pytest.fixture(scope="module")
def ds():
    return load_sage_v2()


def test_shipped_library_is_lint_clean():
    assert lint_library(build_library()) == []


def test_shipped_tools_are_the_material(ds):
    assert [t.to_dict() for t in ds.tools] == [t.to_dict() for t in build_library()]


def test_lint_finds_what_issue_15_found():
    from sage_bench.core import Tool
    ret = {"type": "object", "properties": {"ok": {"type": "boolean", "x-type": "boolean"}}}
    bad = [Tool("a.x", "x", "Requires the ; optionally a date.", returns=ret),
           Tool("a.y", "y", "Submits a a reading to the utility company.", returns=ret),
           Tool("a.z", "z", "Lists the events of a day in the calendar.", returns=ret),
           Tool("a.w", "w", "Lists the events of one day in the calendar.", returns=ret),
           Tool("a.v", "v", "Reports daily activity of the user for a day.",
                returns={"type": "object", "properties": {"steps": {"type": "array", "x-type": "integer[]"}}})]
    found = "\n".join(lint_library(bad))
    for what in ("empty slot", "doubled word", "within one word", "'steps' looks like a count"):
        assert what in found, what


def test_material_errors_name_file_and_line(tmp_path):
    import shutil
    root = tmp_path / "material"
    shutil.copytree(shipped_dir() / "material", root)
    p = root / "library" / "productivity.yaml"
    p.write_text(p.read_text().replace('"title start end ?location ?attendees"', '"title start end ?nowhere"', 1))
    with pytest.raises(MaterialError) as e:
        load_material(root)
    assert "productivity.yaml:" in str(e.value) and "nowhere" in str(e.value)


def test_sizes_reach_the_floors(ds):
    c = ds.counts()
    assert len(ds.tools) >= SIZE_FLOORS["tools"] and len(ds.tools.categories) >= SIZE_FLOORS["categories"]
    for ch in ("tool_selection", "planning", "timing"):
        assert c[ch]["test"] >= SIZE_FLOORS[ch], (ch, c[ch])


def test_version_is_recorded(ds):
    from sage_bench.results import data_info
    assert ds.version == SAGE_V2_VERSION == "2.0"
    assert data_info(ds)["version"] == "2.0"


def test_every_selection_sample_has_an_acceptable_set(ds):
    ids = set(ds.tools.ids)
    for s in ds.select("tool_selection"):
        assert s.relevant_tools and set(s.relevant_tools) <= ids, s.id
        assert s.relevant_tools[:len(s.meta["primary"])] == s.meta["primary"], s.id


def test_splits_are_stratified(ds):
    "Every challenge is split near the target proportions, and so is every category and every large stratum."
    for ch in ("tool_selection", "planning", "timing"):
        group = ds.select(ch)
        share = Counter(s.split for s in group)
        for sp, r in SPLIT_RATIOS.items():
            assert abs(share[sp] / len(group) - r) < 0.06, (ch, sp, share)
    by_cat = {}
    for s in ds.select("tool_selection"):
        if s.meta["n_tools"] == 1: by_cat.setdefault(s.meta["category"], []).append(s.split)
    for cat, splits in by_cat.items():
        if len(splits) >= 8: assert 0.2 <= splits.count("test") / len(splits) <= 0.7, (cat, Counter(splits))
    strata = {}
    for s in ds.select("tool_selection"): strata.setdefault(s.meta["n_tools"], []).append(s.split)
    for s in ds.select("planning"): strata.setdefault(("plan", s.meta["n_steps"]), []).append(s.split)
    for s in ds.select("timing"): strata.setdefault(("timing", s.should_call_tool), []).append(s.split)
    for k, splits in strata.items():
        if len(splits) < 60: continue
        n = Counter(splits)
        for sp, r in SPLIT_RATIOS.items():
            assert abs(n[sp] / len(splits) - r) < 0.12, (k, n)


def test_no_dev_or_test_text_near_a_train_text(ds):
    "No dev/test text is within character TF-IDF cosine 0.8 of a train text of its challenge."
    for ch in ("tool_selection", "planning", "timing"):
        group = ds.select(ch)
        texts = [text_of(s) for s in group]
        X = char_tfidf(texts).tocsr()
        train = [i for i, s in enumerate(group) if s.split == "train"]
        held = [i for i, s in enumerate(group) if s.split != "train"]
        sims = (X[held] @ X[train].T).toarray()
        worst = float(sims.max()) if sims.size else 0.0
        assert worst < LEAK_CHAR_COSINE, (ch, worst)


def test_planning_graphs_are_typed_and_sane(ds):
    "Each plan is a dependency graph whose every input is typed and comes from the request or an earlier output of its type."
    tools = {t.id: t for t in ds.tools}
    for s in ds.select("planning"):
        steps = []
        for i, st in enumerate(s.steps):
            inputs = {}
            for p, v in (st.arguments or {}).items():
                inputs[p] = ("step", v["from_step"], v["field"]) if isinstance(v, dict) and "from_step" in v else ("request", p)
                if inputs[p][0] == "step": assert v["from_step"] in st.depends_on, (s.id, i, p)
            steps.append({"tool": st.tool_id, "inputs": inputs})
            assert set(tools[st.tool_id].parameters["required"]) <= set(inputs), (s.id, i)
        assert check_plan(steps, tools, set(p for st in steps for p, src in st["inputs"].items() if src[0] == "request")) == [], s.id


def test_check_plan_rejects_the_v1_faults():
    lib = {t.id: t for c in load_material() for t in c.tools}
    mismatch = [{"tool": "music.search_music", "inputs": {"query": ("request", "query")}},
                {"tool": "photos.make_slideshow", "inputs": {"photo_album_id": ("step", 0, "album_id")}}]
    create_delete = [{"tool": "calendar.create_event", "inputs": {"title": ("request", "title"), "start": ("request", "start"), "end": ("request", "end")}},
                     {"tool": "calendar.cancel_event", "inputs": {"event_id": ("step", 0, "event_id")}}]
    noop = [{"tool": "calendar.get_event", "inputs": {"event_id": ("request", "event_id")}},
            {"tool": "calendar.rename_event", "inputs": {"event_id": ("step", 0, "event_id"), "title": ("step", 0, "title")}}]
    assert any("album" in p for p in check_plan(mismatch, lib, {"query"}))
    assert any("created" in p for p in check_plan(create_delete, lib, {"title", "start", "end"}))
    assert any("writes back" in p for p in check_plan(noop, lib, {"event_id"}))


def test_timing_has_many_kinds_and_both_labels(ds):
    kinds = Counter(s.meta["kind"] for s in ds.select("timing"))
    assert len(kinds) >= 8, kinds
    labels = Counter(s.should_call_tool for s in ds.select("timing"))
    assert min(labels.values()) / max(labels.values()) > 0.8, labels


def test_loader_round_trip_and_bad_line(tmp_path, ds):
    out = tmp_path / "v2"
    out.mkdir()
    for f in ("tools.jsonl", "samples.jsonl"): (out / f).write_bytes((shipped_dir() / f).read_bytes())
    again = load_sage_v2(out)
    assert [s.to_dict() for s in again.samples] == [s.to_dict() for s in ds.samples] and again.version == "2.0"
    lines = (out / "samples.jsonl").read_text().splitlines()
    lines[3] = lines[3][:-5]
    (out / "samples.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception) as e:
        load_sage_v2(out)
    assert "samples.jsonl" in str(e.value) and ":4" in str(e.value)
    lenient = load_sage_v2(out, lenient=True)
    assert len(lenient.samples) == len(ds.samples) - 1 and lenient.load_summary()["n_skipped"] == 1


@pytest.mark.slow                 # runs the whole generator: the full tier only
def test_regeneration_is_byte_identical(tmp_path):
    "Generation is deterministic (seed 42) and the shipped files are what it writes."
    write_sage_v2(tmp_path)
    for f in ("tools.jsonl", "samples.jsonl"):
        assert (tmp_path / f).read_bytes() == (shipped_dir() / f).read_bytes(), f"{f} differs from the shipped copy"


@pytest.mark.slow                 # runs the whole generator: the full tier only
def test_paraphrase_hook_is_used():
    _, samples, _ = generate_sage_v2(paraphrase=lambda spec, text: text.upper())
    single = [s for s in samples if s.challenge != "tool_selection" or s.meta["n_tools"] == 1]
    assert single and all(text_of(s) == text_of(s).upper() for s in single)


def _texts(s):
    if s.challenge == "tool_selection": return s.query
    if s.challenge == "planning": return s.request
    return " ".join([c["content"] for c in s.context] + [s.message])


def test_a_person_keeps_their_own_email(ds):
    import re
    from sage_bench.data.sage_v2 import people
    who = people()
    bad = []
    for s in ds.samples:
        t = _texts(s)
        names = [n for n in who if n in t]
        mails = set(re.findall(r"[a-z]+\.[a-z]+@example\.com", t)) & set(who.values())
        if len(names) == 1 and mails and who[names[0]] not in mails: bad.append((s.id, t))
    assert bad == [], bad[:5]


def test_dates_of_one_request_fit_together(ds):
    import re
    from datetime import date
    bad = []
    for s in ds.samples:
        if s.challenge != "planning": continue
        ds_ = {(st.tool_id, k): date.fromisoformat(v[:10]) for st in s.steps for k, v in st.arguments.items()
               if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d(T.*)?", v)}
        if not ds_: continue
        by_name = {k: d for (_, k), d in ds_.items()}
        if ((max(ds_.values()) - min(ds_.values())).days > 14 or ("date" in by_name and "check_in" in by_name and by_name["date"] != by_name["check_in"])
                or any(k in ("check_out", "end_date", "end", "return_at") and d < min(ds_.values()) for (_, k), d in ds_.items())):
            bad.append((s.id, s.request))
    assert bad == [], bad[:5]


def test_a_count_of_one_is_singular(ds):
    import re
    from sage_bench.data.sage_v2 import COUNT_NOUNS
    one = re.compile(r"(?<![\d.,])\b1 (%s)\b" % "|".join(sorted(COUNT_NOUNS)))
    bad = [(s.id, _texts(s)) for s in ds.samples if one.search(_texts(s))]
    assert bad == [], bad[:5]


def test_every_tool_has_a_phrasing():
    cats = load_material()
    bare = [t.id for c in cats for t in c.tools if not c.queries.get(t.id)]
    assert bare == [], bare


# the planning review's causes (issue 15 review of v2.0: incoherent values across steps, gold ignoring ids named in the
# request, missing explicit order edges): each one is a generation-time check, and none is left in the shipped data

def _flat(v):
    if isinstance(v, list): return [x for y in v for x in _flat(y)]
    return [] if isinstance(v, dict) else [str(v)]


def test_ids_named_in_a_request_are_used_by_its_gold(ds):
    "Every object id the request names (CEL-35448, POL-12098, ...) is an argument of some step of the gold plan."
    import re
    bad = []
    for s in ds.select("planning"):
        given = {x for st in s.steps for v in (st.arguments or {}).values() for x in _flat(v)}
        named = set(re.findall(r"\b[A-Z]{2,}-\d{3,}\b", s.request))
        if named - given: bad.append((s.id, s.request, sorted(named - given)))
    assert bad == [], bad[:5]


def test_link_plan_keeps_what_the_request_names_and_check_plan_counts_the_rest():
    from sage_bench.data.sage_v2 import link_plan
    lib = {t.id: t for c in load_material() for t in c.tools}
    cellar = {"steps": ["wine.cellar_ready_now", "wine.drink_from_cellar"]}
    steps, _ = link_plan(cellar, lib, {"cellar_entry_id"})
    assert steps[1]["inputs"]["cellar_entry_id"] == ("request", "cellar_entry_id") and check_plan(steps, lib, {"cellar_entry_id"}) == []
    swapped, _ = link_plan(cellar, lib)                   # as v2.0 linked it: the bottle another step picked
    assert any("names 'cellar_entry_id'" in p for p in check_plan(swapped, lib, {"cellar_entry_id"}))
    takeaway, _ = link_plan({"steps": ["food_delivery.restaurants_delivering"]}, lib, {"address", "cuisine"})
    assert takeaway[0]["inputs"]["cuisine"] == ("request", "cuisine")
    dropped = [{"tool": "food_delivery.restaurants_delivering", "inputs": {"address": ("request", "address")}}]
    assert any("gives 'cuisine' but the step does not use it" in p for p in check_plan(dropped, lib, {"address", "cuisine"}))


def test_order_the_request_states_is_in_the_graph(ds):
    "A goal's declared order (`order: ['0<1']`) is a dependency of every one of its plans; an unstated one is rejected."
    from sage_bench.data.sage_v2 import check_order, load_goals, order_edges
    goals = {g["id"]: g for g in load_goals()}
    checked = 0
    for s in ds.select("planning"):
        before = [set() for _ in s.steps]
        for i, st in enumerate(s.steps):
            for j in st.depends_on: before[i] |= {j} | before[j]
        for a, b in order_edges(goals[s.meta["goal"]]):
            assert a in before[b], (s.id, a, b); checked += 1
    assert checked > 0
    two = [{"tool": "web_hosting.backup_site", "inputs": {}}, {"tool": "web_hosting.deploy_site", "inputs": {}}]
    assert check_order({"id": "x", "steps": ["a", "b"]}, two, "Ship it, but take a backup first.")
    assert check_order({"id": "x", "steps": ["a", "b"], "order": ["0<1"]}, two, "Ship it, but take a backup first.") == []


def test_values_that_belong_together_stay_together(ds):
    "For a goal with `together` sets, the values of every plan come from one set; no trip starts where it ends."
    from sage_bench.data.sage_v2 import load_goals
    goals = {g["id"]: g for g in load_goals()}
    bad = []
    for s in ds.select("planning"):
        args = {k: str(v) for st in s.steps for k, v in (st.arguments or {}).items() if not isinstance(v, (dict, list))}
        sets = goals[s.meta["goal"]].get("together")
        if sets and not any(all(args.get(k, v) == str(v) for k, v in t.items()) for t in sets): bad.append((s.id, s.request))
        for a, b in (("origin", "destination"), ("from_station", "to_station"), ("pickup", "dropoff")):
            if a in args and args.get(a) == args.get(b): bad.append((s.id, s.request))
    assert bad == [], bad[:5]


def test_generation_counts_its_rejections():
    _, _, report = generate_sage_v2()
    rej = report["rejected_plans"]
    assert all(r["problems"] and "goal" in r and "request" in r for r in rej)


def test_unit_conversions_can_be_answered(ds):
    "A conversion query converts between units of one kind (a recipe may turn a volume into a weight), never feet into kilometres."
    import re
    kind = {"miles": "length", "kilometres": "length", "pounds": "mass", "kilograms": "mass", "Fahrenheit": "temperature",
            "Celsius": "temperature", "square feet": "area", "square metres": "area", "cups": "volume", "ounces": "mass",
            "tablespoons": "volume", "grams": "mass", "millilitres": "volume"}
    unit = re.compile(r"\b(%s)\b" % "|".join(sorted(kind, key=len, reverse=True)))
    conv = {"calculator.convert_units", "recipes.convert_kitchen_units"}
    checked, bad = 0, []
    for s in ds.select("tool_selection"):
        if s.meta["n_tools"] != 1 or not conv & set(s.meta["primary"]): continue
        us = unit.findall(s.query)
        if len(us) != 2: continue
        checked += 1
        a, b = kind[us[0]], kind[us[1]]
        if a != b and not (s.meta["primary"] == ["recipes.convert_kitchen_units"] and {a, b} == {"volume", "mass"}): bad.append(s.query)
    assert checked and bad == [], bad[:5]


def test_acceptable_sets_follow_the_equivalents():
    from sage_bench.data.sage_v2 import load_equivalents
    eq = load_equivalents()
    assert "calculator.convert_units" in eq["recipes.convert_kitchen_units"]
    assert "recipes.convert_kitchen_units" not in eq.get("calculator.convert_units", [])      # one way only
    assert "flights.miles_balance" in eq["loyalty.points_balance"] and "loyalty.points_balance" in eq["flights.miles_balance"]

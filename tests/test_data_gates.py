"""Issue 15's sanity gates (sage_bench.data.gates) on small fixtures where the answer is known, and on the shipped
built-in `sage` (version 2)."""
import pytest
from sage_bench.core import Dataset, PlanningSample, PlanStep, SelectionSample, TimingSample, Tool, ToolLibrary
from sage_bench.data import gates as G

TOOLS = {"weather": "Current weather and forecast for a city", "email": "Send an email message to a contact",
         "calendar": "Create a calendar event at a date and time", "translate": "Translate text into another language",
         "calculator": "Evaluate an arithmetic expression", "maps": "Driving directions between two places"}
LIB = ToolLibrary([Tool(t, t, d) for t, d in TOOLS.items()], "gates-fixture")


def _timing(words_give_it_away: bool):
    "Tool turns and no-tool turns; with words_give_it_away each class has its own words, else both share the same words."
    tool = [f"please check the {w} for order HTL-{i}" for i, w in enumerate(["weather", "email", "calendar", "maps"] * 5)]
    chat = [f"thanks so much for the {w} tip {i}" for i, w in enumerate(["lovely", "funny", "kind", "great"] * 5)]
    if not words_give_it_away:                      # the same texts in both classes: no word can tell them apart
        chat = list(tool)
    data = [(m, True) for m in tool] + [(m, False) for m in chat]
    return [TimingSample(f"t{i}", "fx", "test" if i % 5 == 0 else "train", message=m, should_call_tool=y) for i, (m, y) in enumerate(data)]


def _plans(listed: bool):
    "Two-step plans whose request lists the steps with 'then' (listed) or states a goal without the tools' words."
    pairs = [("weather", "email"), ("translate", "email"), ("maps", "calendar"), ("calculator", "email")] * 3
    say = {"weather": "check the weather forecast in Oslo", "email": "send an email message to Ann", "translate": "translate the text",
           "maps": "get driving directions to Bern", "calendar": "create a calendar event for it", "calculator": "evaluate the arithmetic"}
    req = (lambda a, b: f"First {say[a]}, then {say[b]}.") if listed else (lambda a, b: "Sort out my Friday, you know what I need.")
    return [PlanningSample(f"p{i}", "fx", "test", request=req(a, b), steps=[PlanStep(a), PlanStep(b, depends_on=[0])])
            for i, (a, b) in enumerate(pairs)]


def _selection(easy: bool):
    "Queries that repeat their tool's words (easy), or share no word with any tool text (the tools sit last in library order)."
    q = {"maps": "driving directions between two places", "calculator": "evaluate an arithmetic expression",
         "translate": "translate text into another language"} if easy else \
        {"maps": "how long to Lyon by car", "calculator": "what do I owe if we split 84 three ways", "translate": "say hola in the other tongue"}
    return [SelectionSample(f"s{i}", "fx", "test", query=text, relevant_tools=[t]) for i, (t, text) in enumerate(q.items())]


def _ds(shallow: bool) -> Dataset:
    return Dataset("fx", LIB, _timing(shallow) + _plans(shallow) + _selection(shallow)).check()


def test_timing_bow_lr_sees_surface_words():
    easy, hard = G.timing_bow_lr(_ds(True), n_boot=100), G.timing_bow_lr(_ds(False), n_boot=100)
    assert easy["value"] == 1.0 and easy["n"] == 8 and easy["n_train"] == 32
    assert hard["value"] <= 0.75                                  # identical texts in both classes: no better than a guess
    assert easy["ci_low"] <= easy["value"] <= easy["ci_high"]


def test_sequence_word_planner_solves_listed_steps_only():
    listed, goal = G.sequence_word_planner(_ds(True), n_boot=100), G.sequence_word_planner(_ds(False), n_boot=100)
    assert listed["value"] == 1.0 and listed["plan_success"]["value"] == 1.0 and listed["clauses_match_steps"] == 1.0
    assert goal["value"] == 0.0 and goal["clauses_match_steps"] == 0.0
    assert G.split_on_sequence_words("First A, then B; after that C. Finally D") == ["A", "B", "C", "D"]
    assert G.split_on_sequence_words("Then, next.") == []


def test_retrieval_ndcg_bm25():
    easy, hard = G.retrieval_ndcg(_ds(True), kinds=("bm25",), n_boot=100), G.retrieval_ndcg(_ds(False), kinds=("bm25",), n_boot=100)
    assert easy["bm25"]["value"] == 1.0 and easy["bm25"]["n"] == 3
    assert hard["bm25"]["value"] < 0.5


def test_gate_report_thresholds_and_verdicts():
    t = G.gate_report(_ds(True), dense=False, n_boot=100)
    assert list(t.gate) == ["timing_bow_lr", "sequence_word_planner", "bm25_ndcg@10"]
    assert list(t.passed) == [False, False, False]               # the shallow fixture fails every gate
    assert list(t.allowed) == ["<= 0.85", "<= 0.10", ">= 0.35 and <= 0.85"]
    assert G.GATES["dense_ndcg@10"][1:] == (0.35, 0.85)
    assert G._row("timing_bow_lr", {"value": 0.85, "n": 1})["passed"] and not G._row("bm25_ndcg@10", {"value": 0.3, "n": 1})["passed"]
    print("\n" + G.show_gates(t.to_dict("records")))


def test_gates_name_the_missing_split():
    ds = Dataset("fx", LIB, _selection(True)).check()
    with pytest.raises(ValueError, match="'fx' has no timing samples in its 'train' split"):
        G.timing_bow_lr(ds)
    with pytest.raises(ValueError, match="'fx' has no planning samples"):
        G.sequence_word_planner(ds)


@pytest.mark.slow
def test_dense_gate_runs_with_the_project_embedder():
    "The dense gate encodes with the project's embedding model (embed.get_embedder); skipped when none is available offline."
    from sage_bench.embed import resolve_model
    try: resolve_model()
    except RuntimeError as e: pytest.skip(str(e))
    r = G.retrieval_ndcg(_ds(True), kinds=("dense",), n_boot=50)
    assert r["dense"]["n"] == 3 and r["dense"]["value"] >= 0.5


@pytest.mark.slow          # runs every gate on the whole data set, dense encoding included (half a minute on 2 cores)
def test_shipped_sage_passes_gates():
    "The built-in `sage` (version 2) passes every gate."
    from sage_bench.registry import get_dataset
    ds = get_dataset("sage")
    assert ds.version == "2.0"
    t = G.gate_report(ds)
    assert t.passed.all(), "sage fails a sanity gate:\n" + G.show_gates(t.to_dict("records"))

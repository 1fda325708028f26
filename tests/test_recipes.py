"""DEVELOPING.md's recipes, followed once each: the code blocks of "Adding a method", "Adding a data set" and "Adding a
metric" are written, as they stand, into one temporary module named in $SAGE_BENCH_PLUGINS; the toy method, data set
and metric must then show up where the recipes say (registry, CLI, engine, scoring, results tables, section 5.4),
without an LLM server. Everything the module added is unregistered afterwards."""
import importlib, re, sys
from pathlib import Path
import pytest

from sage_bench import metrics as M
from sage_bench import registry as R

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("Adding a method", "Adding a data set", "Adding a metric")
MODULE = "sage_bench_recipe_toys"


def recipe_code(title: str) -> str:
    "The python block of the DEVELOPING.md recipe `### <title>`."
    text = (ROOT / "DEVELOPING.md").read_text(encoding="utf-8")
    part = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^##|\Z)", text, re.M | re.S)
    assert part, f"DEVELOPING.md has no recipe '### {title}'"
    code = re.findall(r"^```python\n(.*?)^```", part.group(1), re.M | re.S)
    assert len(code) == 1, f"recipe {title!r}: one python block expected, found {len(code)}"
    return code[0]


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    "Import the recipes' module the way a plugin is found ($SAGE_BENCH_PLUGINS); unregister what it added afterwards."
    d = tmp_path_factory.mktemp("recipes")
    (d / f"{MODULE}.py").write_text("\n\n".join(recipe_code(t) for t in RECIPES), encoding="utf-8")
    R.load_plugins()   # the package's own entries first, so that the snapshot holds them and only the toys are removed
    before = {k: set(R._REGISTRY[k]) for k in ("method", "dataset")}, set(M.METRICS)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(d))
        mp.setenv("SAGE_BENCH_PLUGINS", MODULE)
        R.load_plugins()
        assert MODULE in sys.modules, "load_plugins did not import the module named in $SAGE_BENCH_PLUGINS"
        try:
            yield {"dir": d, "out": tmp_path_factory.mktemp("out"), "module": importlib.import_module(MODULE)}
        finally:
            for k in ("method", "dataset"):
                for n in set(R._REGISTRY[k]) - before[0][k]: R.unregister(k, n)
            for n in set(M.METRICS) - before[1]: M.unregister_metric(n)
            R._loaded.discard(MODULE)
            sys.modules.pop(MODULE, None)
    assert {k: set(R._REGISTRY[k]) for k in ("method", "dataset")} == before[0] and set(M.METRICS) == before[1]


def test_recipes_touch_few_files():
    "Each recipe names at most two files besides its tests and notebook (here: its notebook, its test, README)."
    text = (ROOT / "DEVELOPING.md").read_text(encoding="utf-8")
    for t in RECIPES:
        body = re.search(rf"^### {re.escape(t)}\n(.*?)(?=^##|\Z)", text, re.M | re.S).group(1)
        assert body.startswith("\nFiles: "), t
        assert len(body.split("```python")[0].splitlines()) <= 12, f"recipe {t!r} is more than a few lines"


def test_method_recipe(toys, capsys):
    from sage_bench.cli import main
    from sage_bench.engine import evaluate
    e = R.lookup("method", "timing.always")
    assert e.challenge == "timing" and not e.needs_llm and "timing.always" in R.method_ids("timing", skip_llm=True)
    assert main(["list", "methods"]) == 0
    assert re.search(r"^timing\.always\s+timing\s+no\s+Always calls a tool", capsys.readouterr().out, re.M)
    r = evaluate("timing.always", "sage", samples=20, output_dir=toys["out"], progress=False, n_boot=50)
    assert r.metrics["n"] == 20 and r.value("recall") == 1.0 and r.value("precision") == r.value("accuracy")
    assert all(rec.prediction == {"call_tool": True, "confidence": 1.0} for rec in r.records)


def test_dataset_recipe(toys, capsys):
    from sage_bench.cli import main
    from sage_bench.engine import evaluate
    assert "tiny" in R.dataset_names()
    ds = R.get_dataset("tiny")
    assert ds.counts() == {"tool_selection": {"test": 6}} and len(ds.tools) == 6
    r = evaluate("selector.keyword", "tiny", output_dir=toys["out"], progress=False, n_boot=50)
    assert r.metrics["n"] == 6 and r.value("hit@5") >= 5 / 6, r.metrics["metrics"]["hit@5"]
    assert main(["eval", "--dataset", "tiny", "--methods", "selector.keyword", "--output-dir", str(toys["out"] / "eval")]) == 0
    assert re.search(r"tool_selection\s+tiny\s+selector\.keyword\s+6\b", capsys.readouterr().out)
    # section 5.4 runs every method on every data set of dataset_names(); here on this one only, the other data sets are slow
    from sage_bench.experiments.cross_dataset import run_cross_dataset
    res = run_cross_dataset(methods=["selector.keyword", "timing.always"], datasets=["tiny"], skip_llm=True,
                            output_dir=toys["out"] / "5.4", progress=False)
    assert [(x["dataset"], x["method"]) for x in res["results"]] == [("tiny", "selector.keyword")]   # no timing samples


def test_metric_recipe(toys, capsys):
    from sage_bench.cli import main
    from sage_bench.engine import evaluate, results_table
    m = M.get_metric("all_in_top5")
    assert m.challenge == "tool_selection" and m.table and "all_in_top5" in M.TABLE_METRICS["tool_selection"]
    recs = [dict(sample_id="a", prediction={"ranking": ["x", "b", "a"]}, gold={"relevant": ["a", "b"]}),
            dict(sample_id="b", prediction={"ranking": ["a", "x", "y", "z", "w", "b"]}, gold={"relevant": ["a", "b"]}),
            dict(sample_id="c", prediction=None, gold={"relevant": ["a"]})]
    s = M.score_records("tool_selection", recs, n_boot=50)
    assert s["metrics"]["all_in_top5"]["value"] == pytest.approx(1 / 3) and s["metrics"]["all_in_top5"]["ci_low"] is not None
    assert [d["all_in_top5"] for d in M.per_sample_scores("tool_selection", recs)] == [1.0, 0.0, 0.0]
    r = evaluate("selector.keyword", "tiny", output_dir=toys["out"], progress=False, n_boot=50)
    assert r.value("all_in_top5") == r.value("hit@5")        # one relevant tool per sample: the same thing
    t = results_table([r])
    assert "all_in_top5" in t.columns and t["all_in_top5"].iloc[0].startswith(f"{100 * r.value('hit@5'):.1f}")
    assert main(["eval", "--dataset", "tiny", "--methods", "selector.keyword", "--output-dir", str(toys["out"] / "eval")]) == 0
    assert "all relevant in top 5" in capsys.readouterr().out      # the terminal table heads a metric with its display name


def test_a_new_module_needs_no_list(tmp_path, monkeypatch):
    "A module added to sage_bench.methods or sage_bench.data is imported by load_plugins without PLUGIN_MODULES naming it."
    assert R.PLUGIN_PACKAGES == ("sage_bench.data", "sage_bench.methods")
    assert {"sage_bench.methods.timing", "sage_bench.data.common", "sage_bench.methods.base"} <= set(R.plugin_modules())
    (tmp_path / "toypkg").mkdir()
    (tmp_path / "toypkg" / "__init__.py").write_text("")
    (tmp_path / "toypkg" / "newmethod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(R, "PLUGIN_PACKAGES", ("toypkg",))
    assert "toypkg.newmethod" in R.plugin_modules()
    sys.modules.pop("toypkg", None)


def test_plugin_metric_known_in_a_fresh_process(toys):
    "A result file written with a plugin's metric reads in a new process: get_metric imports the plugin modules when it must."
    import os, subprocess
    env = {**os.environ, "SAGE_BENCH_PLUGINS": MODULE, "PYTHONPATH": os.pathsep.join([str(toys["dir"]), os.environ.get("PYTHONPATH", "")])}
    code = ("from sage_bench.results import Scores\n"
            "s = Scores.from_dict({'challenge': 'tool_selection', 'n': 1, 'metrics': {'all_in_top5': {'value': 1.0}}})\n"
            "from sage_bench.metrics import display_name; print(display_name('all_in_top5'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "all relevant in top 5", out.stderr[-2000:]

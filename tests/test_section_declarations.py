"""Each paper section is declared once (sage_bench.sections), in its own module; the registry, the paper, report,
rebuild and the CLI iterate over the declarations."""
import json
from pathlib import Path
import sage_bench
from sage_bench import sections as S

PKG = Path(sage_bench.__file__).parent
REPO = PKG.parent


def test_every_section_is_declared_once_in_its_own_module():
    secs = S.sections()
    assert list(secs) == ["5.2", "5.3", "5.4", "5.5", "paper2"]
    for key, s in secs.items():
        assert (REPO / "nbs" / s.notebook).exists(), s.notebook
        assert s.build is not None and s.results and len({r.name for r in s.results}) == len(s.results)
        assert all(r.paragraph is not None for r in s.results), key
    from sage_bench.experiments import main_eval, analysis, cross_dataset, training
    assert (main_eval.SECTION_5_2, analysis.SECTION_5_3, cross_dataset.SECTION_5_4, training.SECTION_5_5, training.SECTION_PAPER2) == tuple(secs.values())


def test_no_other_module_lists_a_sections_result_files():
    "grep: a result file's name is in its section's module (and the module that writes it), never in paper, report, registry or cli."
    names = {r.name for s in S.sections().values() for r in s.results if "*" not in r.name}
    for mod in ("paper.py", "report.py", "runner.py", "artifacts.py", "status.py", "registry.py", "cli.py", "sections.py"):
        text = (PKG / mod).read_text(encoding="utf-8")
        assert not [n for n in names if f'"{Path(n).name}"' in text or f'"{n}"' in text], mod
    for n in names:
        where = [p.relative_to(PKG) for p in PKG.rglob("*.py") if p.name != "_modidx.py" and f'"{Path(n).name}' in p.read_text(encoding="utf-8")]
        assert len(where) <= 2, (n, where)         # its declaration, and the training code that writes 5.5's and paper 2's files


def test_registry_paper_and_cli_read_the_declarations():
    from sage_bench import paper
    from sage_bench.registry import entries
    secs = S.sections()
    assert {e.name for e in entries("experiment")} == set(secs)
    for e in entries("experiment"):
        s = secs[e.name]
        assert (e.extra["notebook"], e.extra["output"]) == (s.notebook, s.output)
        assert e.extra["expected"] == [r.name for r in s.results if r.required]
    assert list(paper.SECTIONS) == [*secs, "other"] and paper.SECTIONS["5.4"]["results"] == secs["5.4"].files(True)
    assert paper.section_of("fig_5_3_scaling") == "5.3" and paper.section_of("training_comparison") == "5.5"
    assert paper.figure_caption(Path("/x/paper1/figures/fig_5_4_heatmap.pdf"))[1] == "paper1/section_5_4_cross_dataset/cross_dataset_results.json"


def test_a_new_section_needs_only_its_declaration(tmp_path):
    "A toy section declared in a test module reaches the registry, the paper and rebuild without any other change."
    from sage_bench import paper
    from sage_bench.registry import _REGISTRY, lookup
    from sage_bench.report import rebuild
    from sage_bench.results import write_result_file
    built = []
    toy = S.declare(S.Section("9.9", "toy", "a toy section", "05_2_main_eval.ipynb", "paper1/section_9_9_toy",
                              (S.ResultSpec("toy_results.json", paper.rows_paragraph, "results"),),
                              build=lambda output_dir=None: built.append(output_dir) or ["fig_9_9_toy.pdf"]))
    try:
        assert lookup("experiment", "9.9").extra["output"] == "paper1/section_9_9_toy"
        assert rebuild(["9.9"], tmp_path) == {"9.9": ["fig_9_9_toy.pdf"]} and built == [tmp_path]
        row = {"method": "selector.keyword", "dataset": "sage",
               "metrics": {"challenge": "tool_selection", "n": 4, "metrics": {"hit@5": {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75}}}}
        write_result_file(tmp_path / toy.output / "toy_results.json", {"results": [row]}, "results")
        pdir = tmp_path / "paper"; pdir.mkdir(); (pdir / "paper.md").write_text("x")
        b = paper.prepare_paper(tmp_path, pdir)
        assert r"the highest hit@5 is reached by \texttt{selector.keyword}: 50.0\%" in (b / "section_9_9.tex").read_text()
        assert paper.section_of("fig_9_9_toy") == "9.9"
        man = json.loads((b / "manifest.json").read_text())
        assert {c["file"] for c in man["claims"]} == {"paper1/section_9_9_toy/toy_results.json"}
    finally:
        S._SECTIONS.pop("9.9", None); _REGISTRY["experiment"].pop("9.9", None)

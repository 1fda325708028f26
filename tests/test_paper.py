"""The paper build: `sage-bench paper` (pandoc + xelatex) from the results of quick runs.

Checks that every table caption (read from the generated .tex files) and every figure of the
results root is in the PDF (pdftotext), that every number the generated text states is the value
at the JSON pointer of the file it cites, that results not yet produced are announced with their
command, and that missing tools, broken tables and malformed result files give clear errors.
Without pandoc/xelatex/pdftotext the build tests skip locally and fail in CI (CI=true)."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path

import pytest

from sage_bench import paper as pm

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHEAP = ["selector.keyword", "timing.rule_based", "planner.simple"]


def need_tex():
    missing = [t for t in ("pandoc", "xelatex", "pdftotext") if not shutil.which(t)]
    if missing:
        if IN_CI: pytest.fail(f"paper toolchain missing in CI: {missing} (scripts/setup.sh installs it)")
        pytest.skip(f"paper toolchain not installed here: {missing} (install with scripts/setup.sh as root)")


def copy_paper(dest: Path) -> Path:
    "A private copy of the paper sources, so tests never write into the checkout's paper/."
    d = dest / "paper"
    shutil.copytree(REPO / "paper", d, ignore=shutil.ignore_patterns("_build", "paper.pdf", "*.png"))
    return d


@pytest.fixture(scope="session")
def cheap_results(tmp_path_factory):
    "Section 5.2 in the quick setting with the methods that need no LLM, and its figures and tables."
    from sage_bench.experiments.main_eval import run_main_eval, build_5_2
    from sage_bench.registry import dataset_names
    if "sage" not in dataset_names():
        if IN_CI: pytest.fail("the built-in `sage` data set is not registered")
        pytest.skip("the built-in `sage` data set is not registered yet")
    root = tmp_path_factory.mktemp("paper_results")
    run_main_eval(quick=True, methods=CHEAP, skip_llm=True, output_dir=root, progress=False)
    build_5_2(root)
    return root


@pytest.fixture(scope="session")
def built(cheap_results, tmp_path_factory):
    "The paper built from the cheap quick run: (pdf, paper dir, results root)."
    need_tex()
    pdir = copy_paper(tmp_path_factory.mktemp("paper_build"))
    pdf = pm.build_paper(output_dir=cheap_results, paper_dir=pdir)
    return pdf, pdir, cheap_results


def pdf_norm(pdf: Path) -> str:
    return pm.normalize_text(pm.pdf_text(pdf))


def check_every_caption(pdf: Path, root: Path):
    "Every table's \\caption (from the .tex files) and every figure's caption is in the PDF."
    text = pdf_norm(pdf)
    tables = sorted(root.glob("paper*/tables/*.tex"))
    figures = {p.stem for p in root.glob("paper*/figures/*") if p.suffix.lower() in pm.FIGURE_SUFFIXES}
    assert tables and figures, "the quick run produced no tables or figures"
    for t in tables:
        cap = pm.tex_caption(t.read_text())
        assert cap, f"{t} has no \\caption"
        assert pm.normalize_text(pm.detex(cap)) in text, f"caption of {t.name} not in the PDF: {pm.detex(cap)!r}"
    man = json.loads((pdf.parent / "_build" / "manifest.json").read_text())
    assert {f["name"] for f in man["figures"]} == figures, "a figure under the results root is missing from the paper"
    assert {t["name"] for t in man["tables"]} == {t.stem for t in tables}
    for f in man["figures"]:
        assert pm.normalize_text(f["caption"]) in text, f"caption of figure {f['name']} not in the PDF"
        assert (pdf.parent / "_build" / "figures" / Path(f["file"]).name).exists()
    return man


def test_every_table_and_figure_caption_is_in_the_pdf(built):
    pdf, pdir, root = built
    assert pdf == pdir / "paper.pdf" and pdf.stat().st_size > 10_000
    man = check_every_caption(pdf, root)
    assert {t["name"] for t in man["tables"]} >= {"table_5_2_timing", "table_5_2_planning", "table_5_2_tool_selection"}
    r = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True)
    pages = int(re.search(r"Pages:\s+(\d+)", r.stdout).group(1))
    assert pages >= 4


def test_every_stated_number_is_read_from_the_cited_file(built):
    pdf, pdir, root = built
    man = json.loads((pdir / "_build" / "manifest.json").read_text())
    claims = man["claims"]
    assert claims, "the text states no result"
    assert {c["file"] for c in claims} >= {f"paper1/section_5_2_main/{n}_results.json" for n in ("timing", "planning", "selection")}
    for c in claims:
        v = json.loads((root / c["file"]).read_text())
        for k in c["pointer"]: v = v[k]
        assert v == c["value"], c
    text = pdf_norm(pdf)
    for c in claims:                              # and the file each number comes from is named in the PDF
        assert pm.normalize_text(c["file"]) in text
    # a percentage stated in a section's text is a claimed value (rounded as printed)
    frag = (pdir / "_build" / "section_5_2.tex").read_text()
    printed = {round(float(x), 1) for x in re.findall(r"(\d+\.\d)\\%", frag)}
    claimed = {round(100 * c["value"], 1) for c in claims if isinstance(c["value"], float)}
    assert printed and printed <= claimed, printed - claimed


def test_missing_sections_say_not_yet_run_with_their_command(built):
    pdf, pdir, root = built
    man = json.loads((pdir / "_build" / "manifest.json").read_text())
    text = pdf_norm(pdf)
    for sec in ("5.3", "5.4", "5.5", "paper2"):
        if any((root / pat).exists() or list(root.glob(pat)) for pat in pm.SECTIONS[sec]["results"]): continue
        assert man["not_run"][sec]["command"] == f"sage-bench run --section {sec}"
        assert pm.normalize_text(f"Not yet run: sage-bench run --section {sec}") in text


def test_paper_md_has_no_hand_typed_results():
    "Results come from the generated fragments: the prose has no decimal numbers outside maths and code."
    md = (REPO / "paper" / "paper.md").read_text()
    body = md.split("\n---\n", 1)[1]
    body = re.sub(r"<!--.*?-->|```.*?```|\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|\[@[^\]]*\]", "", body, flags=re.S)
    typed = [m.group(0) for m in re.finditer(r"\d+\.\d+\s*%?|\d+\s*%(?!\s*(?:percentile|bootstrap|confidence))", body)]
    assert not typed, typed
    for sec in ("5_2", "5_3", "5_4", "5_5", "paper2"):
        assert f"\\input{{_build/section_{sec}.tex}}" in md


def test_quarto_config_renders_the_same_source():
    import yaml                                    # PyYAML: installed with nbdev (the dev requirements)
    q = yaml.safe_load((REPO / "_quarto.yml").read_text())
    assert q["project"]["type"] == "default" and q["project"]["render"] == ["paper/paper.md"]
    assert q["format"]["pdf"]["pdf-engine"] == "xelatex"
    assert "paper/prepare.py" in q["project"]["pre-render"]
    front = yaml.safe_load((REPO / "paper" / "paper.md").read_text().split("---")[1])
    assert (REPO / "paper" / front["bibliography"]).exists()


def test_quarto_pre_render_step_writes_the_fragments(cheap_results, tmp_path):
    "paper/prepare.py (what `quarto render` runs first) writes _build/ without any TeX tool."
    pdir = copy_paper(tmp_path)
    r = subprocess.run([sys.executable, str(pdir / "prepare.py")], capture_output=True, text=True,
                       env={**os.environ, "SAGE_BENCH_OUTPUT_DIR": str(cheap_results)})
    assert r.returncode == 0, r.stderr
    b = pdir / "_build"
    assert (b / "section_5_2.tex").read_text().count("\\fittedinput{_build/tables/") == 3
    assert {p.name for p in (b / "tables").iterdir()} == {p.name for p in (cheap_results / "paper1" / "tables").glob("*.tex")}


@pytest.mark.slow
def test_new_figures_are_discovered_and_captioned(cheap_results, tmp_path):
    "A figure no caption table knows (a later section's) still goes into the paper, with its sidecar caption."
    need_tex()
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    root = tmp_path / "results"
    shutil.copytree(cheap_results, root)
    fig, ax = plt.subplots(figsize=(4, 2)); ax.plot([0, 1], [0, 1])
    fig.savefig(root / "paper1" / "figures" / "fig_5_4_discovery_check.pdf"); plt.close(fig)
    (root / "paper1" / "figures" / "fig_5_4_discovery_check.json").write_text(json.dumps(
        {"caption": "Discovery check: a figure found by glob with a sidecar caption.", "source": "paper1/figures"}))
    pdf = pm.build_paper(output_dir=root, paper_dir=copy_paper(tmp_path))
    man = check_every_caption(pdf, root)
    f = next(f for f in man["figures"] if f["name"] == "fig_5_4_discovery_check")
    assert f["section"] == "5.4"


def test_missing_tool_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pm.PaperBuildError, match=r"pandoc, xelatex.*texlive-xetex"):
        pm.build_paper(output_dir=tmp_path, paper_dir=copy_paper(tmp_path))


@pytest.mark.slow
def test_broken_table_gives_the_latex_error(cheap_results, tmp_path):
    need_tex()
    root = tmp_path / "results"
    shutil.copytree(cheap_results, root)
    t = root / "paper1" / "tables" / "table_5_2_timing.tex"
    t.write_text(t.read_text().replace(r"\end{tabular}", ""))
    with pytest.raises(pm.PaperBuildError, match=r"xelatex failed") as e:
        pm.build_paper(output_dir=root, paper_dir=copy_paper(tmp_path))
    msg = str(e.value)
    assert re.search(r"table_5_2_timing\.tex:\d+: ", msg), msg             # the LaTeX error with file and line
    assert f"is a copy of {root / 'paper1' / 'tables' / 'table_5_2_timing.tex'}" in msg


def test_malformed_result_file_is_named(tmp_path):
    f = tmp_path / "paper1" / "section_5_4_cross_dataset" / "cross_dataset_results.json"
    f.parent.mkdir(parents=True)
    f.write_text('{"results": [')
    with pytest.raises(ValueError, match="cross_dataset_results.json is not valid JSON"):
        pm.prepare_paper(output_dir=tmp_path, paper_dir=copy_paper(tmp_path))


@pytest.mark.llm
@pytest.mark.sections
@pytest.mark.slow
@pytest.mark.parametrize("sections", [("5.2", "5.3", "5.4")])
def test_paper_from_the_shared_quick_runs(request, bench_root, sections, tmp_path):
    """End to end: after the quick section runs of this session (LLM methods included, see conftest),
    the paper contains every figure and table they produced."""
    need_tex()
    for s in sections: request.getfixturevalue(f"section_{s.replace('.', '_')}")
    pdf = pm.build_paper(output_dir=bench_root, paper_dir=copy_paper(tmp_path))
    check_every_caption(pdf, bench_root)


@pytest.mark.slow
def test_paper_builds_before_any_run(tmp_path):
    "On a fresh machine with no results the paper still builds, and says for every section what to run."
    need_tex()
    pdf = pm.build_paper(output_dir=tmp_path / "nothing", paper_dir=copy_paper(tmp_path))
    text = pdf_norm(pdf)
    for sec in ("5.2", "5.3", "5.4", "5.5", "paper2"):
        assert pm.normalize_text(f"Not yet run: sage-bench run --section {sec}") in text
    man = json.loads((pdf.parent / "_build" / "manifest.json").read_text())
    assert not man["claims"] and not man["figures"] and not man["tables"] and not man["result_files"]
    assert pm.normalize_text("No result file is cited yet") in text

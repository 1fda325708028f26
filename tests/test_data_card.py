"""The data card of sage v2 (sage_bench.data.card): the review file covers exactly the seeded draw of the shipped data, each
verdict is well formed, and the card renders in Markdown and LaTeX from the data."""
import json
import pytest
from sage_bench.core import CHALLENGES, RecordError
from sage_bench.data import card as C
from sage_bench.registry import get_dataset


@pytest.fixture(scope="module")
def v2():
    return get_dataset("sage")


def test_review_covers_exactly_the_seeded_draw(v2):
    rows = C.read_review()
    draw = C.review_draw(v2)
    assert {ch: len(ids) for ch, ids in draw.items()} == {ch: C.REVIEW_N for ch in CHALLENGES}
    assert sorted((r["challenge"], r["sample_id"]) for r in rows) == sorted((ch, i) for ch, ids in draw.items() for i in ids)
    assert C.check_review(rows, v2) == []          # and no sample changed since it was read (digests match)


def test_the_draw_is_reproducible_and_from_test(v2):
    a, b = C.review_draw(v2), C.review_draw(v2)
    assert a == b and a != C.review_draw(v2, seed=C.REVIEW_SEED + 1)
    assert all(v2.sample(i).split == "test" and v2.sample(i).challenge == ch for ch, ids in a.items() for i in ids)


def test_verdicts_are_well_formed():
    rows = C.read_review()
    assert {r["verdict"] for r in rows} <= set(C.VERDICTS)
    assert all(r["reason"].strip() for r in rows if r["verdict"] != "right")
    assert all(r["reviewer"] and r["text"] for r in rows)


def test_a_damaged_review_line_names_file_and_line(tmp_path):
    rows = C.read_review()
    p = tmp_path / "review.jsonl"
    bad = dict(rows[0], verdict="maybe")
    p.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:2], bad]))
    with pytest.raises(RecordError, match=r"review\.jsonl: line 3: verdict 'maybe'"):
        C.read_review(p)
    p.write_text(json.dumps(rows[0]) + "\n" + json.dumps(dict(rows[1], verdict="wrong", reason=" ")) + "\n")
    with pytest.raises(RecordError, match="line 2: a wrong verdict needs its reason"):
        C.read_review(p)


def test_a_changed_sample_makes_the_review_stale(v2, tmp_path):
    rows = C.read_review()
    rows[0] = dict(rows[0], digest="0" * 16)
    probs = C.check_review(rows, v2)
    assert probs == [f"changed since it was read: {rows[0]['sample_id']} (the review must be redone for it)"]


def test_card_renders_from_the_data(v2, tmp_path):
    f = C.card_facts(v2, gates=tmp_path / "no-gates.json", textgen_dir=tmp_path / "no-textgen")
    c = f["counts"]
    assert c["tools"] == len(v2.tools) and c["totals"] == {ch: len(v2.select(ch)) for ch in c["totals"]}
    assert sum(c["plan_lengths"].values()) == len(v2.select("planning"))
    assert sum(v["n"] for v in c["timing_kinds"].values()) == len(v2.select("timing"))
    assert f["review"]["counts"] == C.review_counts(C.read_review()) and not f["review"]["problems"]
    md, tex = C.card_markdown(f), C.card_tex(f)
    assert f"{c['tools']} tools" in md and "Not run" in md
    assert "no acceptance" in md or "accepted" in md
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") >= 3
    assert "sage\\_v2" in tex and "\\texttt{" in tex


def test_card_reads_a_gate_report(v2, tmp_path):
    g = {"dataset": "sage_v2", "embedding_model": "m", "counts": {}, "clauses_match_steps": 0.0,
         "gates": [{"gate": "timing_bow_lr", "measure": "x", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 10,
                    "allowed": "<= 0.85", "passed": True}]}
    (tmp_path / "g.json").write_text(json.dumps(g))
    md = C.card_markdown(C.card_facts(v2, gates=tmp_path / "g.json", textgen_dir=tmp_path / "none"))
    assert "| timing_bow_lr | 0.500 [0.400, 0.600] | 10 | <= 0.85 | pass |" in md


@pytest.mark.slow          # v2_text_specs regenerates the data set (about a minute on 2 cores)
def test_the_reading_of_llm_rewrites_matches_the_pipeline():
    """Every accepted LLM rewrite read beside its seed (textgen/review.jsonl) is a text spec of the v2 pipeline with that
    seed, and a text the pipeline wrote and accepted for it (in the committed results, or before a later check)."""
    from sage_bench.data import textgen as TG
    rows = [json.loads(x) for x in (TG.v2_text_dir() / "review.jsonl").read_text().splitlines() if x.strip()]
    specs = {s["id"]: s for _, s in TG.v2_text_specs()[0]}
    results = {json.loads(x)["id"]: json.loads(x) for x in (TG.v2_text_dir() / "results.jsonl").read_text().splitlines() if x.strip()}
    assert rows and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["verdict"] in C.VERDICTS and r["reason"] and r["reviewer"], r
        assert specs[r["id"]]["seed"] == r["seed"] and specs[r["id"]]["kind"] == r["kind"], r["id"]
        assert r["id"] in results, r["id"]
    facts = C.text_review(TG.v2_text_dir() / "review.jsonl", [TG.TextResult(**x) for x in results.values()])
    assert facts["n"] == len(rows) and 0 < facts["n_still"] <= facts["n"]

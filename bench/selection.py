"""Speed, cache and memory checks of the tool-selection methods, measured in one run.

    .venv/bin/python bench/selection.py                 # full: libraries of 100 ... 20,000 tools
    .venv/bin/python bench/selection.py --quick         # smaller query counts, same checks

Prints (all numbers are measured here, in this run):

1. BM25 query rate on a library of >= 10,000 real tools: `selector.keyword` vs `bm25s` used directly
   (same corpus, same tokenisation, same k) and vs `rank-bm25` (targets: >= 0.8x and >= 10x).
2. Embedding cache: a first run of `selector.embedding` encodes the library; a second run (fresh
   embedder, as a new process would be) encodes no tool again (cache hits counted).
3. numpy vs FAISS exact search time by library size (how `embed.FAISS_MIN_TOOLS` was chosen).
4. Latency and quality of keyword / embedding / hybrid as the library grows (100, 1,000, 5,000, 20,000).
5. Resident memory of a 20,000-tool library's indexes (BM25 + dense), measured in a fresh process
   (target: < 500 MB).

Tools are real: every external data set's library (ToolBench, BFCL, ACEBench, MetaTool, ToolAlpaca,
API-Bank, TaskBench), ToolAlpaca's public-apis catalogue and MetaTool's plugin_info records. When they
hold fewer tools than the largest size asked for, `sage_bench.data.sage.synthetic_tools(n)` tops the
pool up if that function exists; otherwise the largest size is capped at the pool and the output says so.
Queries (for quality) are real: MetaTool single-tool queries and ToolBench queries with their labels.
"""
from __future__ import annotations
import argparse, gc, json, os, random, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    import psutil
    return psutil.Process().memory_info().rss / 2**20


# ---------------------------------------------------------------- the tool pool and the queries
def real_tool_pool():
    "All real tools we have, ids prefixed by their source (each data set's library kept whole; tools without a description dropped)."
    from sage_bench.core import Tool
    from sage_bench.registry import get_dataset, find_data_dir
    import warnings
    pool, seen, by_src, datasets = [], set(), {}, {}
    def add(t: Tool, src: str):
        if t.id in seen or not t.description.strip(): return
        seen.add(t.id); pool.append(t); by_src[src] = by_src.get(src, 0) + 1
    for name in ["toolbench", "bfcl", "acebench", "metatool", "toolalpaca", "apibank", "taskbench"]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = get_dataset(name)
        except Exception as e:
            print(f"  (skipping {name}: {type(e).__name__}: {e})"); continue
        datasets[name] = ds
        for t in ds.tools:
            add(Tool(id=f"{name}:{t.id}", name=t.name, description=t.description, parameters=t.parameters,
                     category=t.category or name, source=name), name)
    d = find_data_dir("toolalpaca", required=False)
    if d is not None and (d / "data" / "public_apis.json").exists():
        for e in json.loads((d / "data" / "public_apis.json").read_text())["entries"]:
            add(Tool(id=f"publicapis:{e['API']}:{e.get('Link', '')}", name=e["API"], description=e.get("Description") or "",
                     category=e.get("Category") or "public-apis", source="public-apis"), "public-apis")
    d = find_data_dir("metatool", required=False)
    if d is not None and (d / "dataset" / "plugin_info.json").exists():
        for i, e in enumerate(json.loads((d / "dataset" / "plugin_info.json").read_text())):
            n = e.get("name_for_model") or e.get("name_for_human") or f"plugin{i}"
            add(Tool(id=f"plugin_info:{n}:{i}", name=n, description=e.get("description_for_model") or e.get("description_for_human") or "",
                     category="openai-plugins", source="metatool/plugin_info"), "plugin_info")
    return pool, by_src, datasets


def query_set(datasets, n_metatool=60, n_toolbench=40, seed=42):
    "[(query, [relevant pooled ids])]: MetaTool single-tool queries (2 per tool) and ToolBench queries with <= 2 relevant APIs."
    rng = random.Random(seed)
    out = []
    if "metatool" in datasets:
        by_tool = {}
        for s in datasets["metatool"].select("tool_selection"):
            if len(s.relevant_tools) == 1: by_tool.setdefault(s.relevant_tools[0], []).append(s)
        tools = sorted(by_tool); rng.shuffle(tools)
        for t in tools[: n_metatool // 2]:
            for s in sorted(by_tool[t], key=lambda s: s.id)[:2]: out.append((s.query, [f"metatool:{t}"]))
    if "toolbench" in datasets:
        ss = [s for s in datasets["toolbench"].select("tool_selection") if len(s.relevant_tools) <= 2]
        ss.sort(key=lambda s: s.id); rng.shuffle(ss)
        for s in ss[:n_toolbench]: out.append((s.query, [f"toolbench:{r}" for r in s.relevant_tools]))
    return out


def make_library(pool, gold_ids, n, seed=42):
    "The gold tools plus seeded random distractors from the pool, n tools in all, in a shuffled order."
    from sage_bench.core import ToolLibrary
    by_id = {t.id: t for t in pool}
    gold = [by_id[g] for g in dict.fromkeys(gold_ids) if g in by_id]
    rest = [t for t in pool if t.id not in set(gold_ids)]
    rng = random.Random(seed); rng.shuffle(rest)
    tools = gold + rest[: max(0, n - len(gold))]
    rng.shuffle(tools)
    return ToolLibrary(tools, f"bench{n}")


def sizes_pool(pool, sizes):
    "Top the pool up with sage synthetic tools when it is smaller than the largest size (if that exists)."
    need = max(sizes) - len(pool)
    note = ""
    if need > 0:
        try:
            from sage_bench.data.sage import synthetic_tools
            extra = list(synthetic_tools(need))
            pool = pool + extra
            note = f"pool topped up with {len(extra)} sage synthetic tools (sage_bench.data.sage.synthetic_tools)"
        except Exception as e:
            note = (f"only {len(pool)} real tools and sage_bench.data.sage.synthetic_tools is not available "
                    f"({type(e).__name__}); the largest size is capped at {len(pool)}")
    return pool, [min(s, len(pool)) for s in sizes], note


# ---------------------------------------------------------------- 1. BM25 speed
def bench_bm25(lib, queries, n_rank_bm25, k=50, repeats=3):
    import bm25s
    from rank_bm25 import BM25Okapi
    from sage_bench.core import SelectionSample
    from sage_bench.methods.base import blind
    from sage_bench.methods.selection import KeywordSelector
    from sage_bench.retrieval import Tokenizer, tool_text as keyword_text, bm25_index
    tok = Tokenizer()
    corpus = tok.many([keyword_text(t) for t in lib])
    t0 = time.perf_counter(); direct = bm25s.BM25(); direct.index(corpus, show_progress=False); t_direct_ix = time.perf_counter() - t0
    kw = KeywordSelector(top_k=k)
    t0 = time.perf_counter(); bm25_index(lib, kw.tokenizer); t_ours_ix = time.perf_counter() - t0
    t0 = time.perf_counter(); okapi = BM25Okapi(corpus); t_okapi_ix = time.perf_counter() - t0
    samples = [blind(SelectionSample(id=f"q{i}", dataset="bench", split="test", query=q, relevant_tools=["x"])) for i, q in enumerate(queries)]
    libs = [lib] * len(samples)

    def run_direct():
        qt = [tok(q) for q in queries]
        return direct.retrieve(qt, k=k, show_progress=False, n_threads=0)
    def run_ours(): return kw.predict_batch(samples, libs)
    def run_okapi():
        out = []
        for q in queries[:n_rank_bm25]:
            s = okapi.get_scores(tok(q)); out.append(np.argsort(-s, kind="stable")[:k])
        return out
    best = {}
    for name, fn, nq in [("bm25s", run_direct, len(queries)), ("keyword", run_ours, len(queries)), ("rank_bm25", run_okapi, min(n_rank_bm25, len(queries)))]:
        ts = []
        for _ in range(repeats if name != "rank_bm25" else 1):
            t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
        best[name] = nq / min(ts)
    # the rankings agree (the method is bm25s underneath)
    # the rankings agree (the method is bm25s underneath): same top-10 scores, and the same ids wherever
    # the 10th score is not tied with the 11th (ties are broken by library order in ours, arbitrarily in bm25s)
    docs, dsc = direct.retrieve([tok(q) for q in queries[:50]], k=11, show_progress=False)
    ours = run_ours()[:50]
    ids = lib.ids
    agree = np.mean([set(ids[j] for j in d[:10]) == set(o.prediction["ranking"][:10]) for d, sc, o in zip(docs, dsc, ours) if sc[9] > sc[10]])
    return dict(n_tools=len(lib), n_queries=len(queries), rate=best, index_s=dict(bm25s=t_direct_ix, keyword=t_ours_ix, rank_bm25=t_okapi_ix),
                top10_set_agreement=float(agree))


# ---------------------------------------------------------------- 3. numpy vs FAISS
def bench_dense_backends(m, q, sizes, k=50, repeats=5):
    "ms per query of exact numpy vs FAISS search, one thread each (a loaded 2-core machine makes multi-thread BLAS timings noise)."
    import faiss
    from threadpoolctl import threadpool_limits
    from sage_bench.embed import DenseIndex
    faiss.omp_set_num_threads(1)
    with threadpool_limits(1): return _dense_rows(m, q, sizes, k, repeats, DenseIndex)

def _dense_rows(m, q, sizes, k, repeats, DenseIndex):
    rows = []
    for n in sizes:
        if n > len(m): continue
        sub = m[:n]
        r = {"n": n}
        for be in ("numpy", "faiss"):
            ix = DenseIndex(sub, be)
            for bs in (1, 16):
                ts = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    for i in range(0, 64, bs): ix.search(q[i:i + bs], k)
                    ts.append((time.perf_counter() - t0) / 64)
                r[f"{be}_b{bs}_ms"] = 1000 * min(ts)
        rows.append(r)
    return rows


# ---------------------------------------------------------------- 4. scaling
def scaling(pool, qs, sizes, methods, batch=16):
    from sage_bench.core import SelectionSample
    from sage_bench.methods.base import blind
    from sage_bench.registry import get_method
    from sage_bench.metrics import hit_at_k, recall_at_k, reciprocal_rank, ndcg_at_k
    gold_ids = [g for _, gs in qs for g in gs]
    rows = []
    for n in sizes:
        lib = make_library(pool, gold_ids, n)
        keep = [(q, gs) for q, gs in qs if all(g in lib for g in gs)]
        samples = [blind(SelectionSample(id=f"q{i}", dataset="bench", split="test", query=q, relevant_tools=gs)) for i, (q, gs) in enumerate(keep)]
        for mid in methods:
            m = get_method(mid)
            t0 = time.perf_counter(); m.predict_batch(samples[:1], [lib]); t_first = time.perf_counter() - t0   # builds/loads the index
            outs, t0 = [], time.perf_counter()
            for i in range(0, len(samples), batch): outs += m.predict_batch(samples[i:i + batch], [lib] * len(samples[i:i + batch]))
            dt = time.perf_counter() - t0
            rk = [(o.prediction or {}).get("ranking") for o in outs]
            g = [gs for _, gs in keep]
            rows.append(dict(n_tools=len(lib), method=mid, n_queries=len(samples), index_s=t_first, ms_per_query=1000 * dt / max(1, len(samples)),
                             **{"hit@1": np.mean([hit_at_k(r, x, 1) for r, x in zip(rk, g)]),
                                "hit@5": np.mean([hit_at_k(r, x, 5) for r, x in zip(rk, g)]),
                                "recall@5": np.mean([recall_at_k(r, x, 5) for r, x in zip(rk, g)]),
                                "mrr": np.mean([reciprocal_rank(r, x) for r, x in zip(rk, g)]),
                                "ndcg@10": np.mean([ndcg_at_k(r, x, 10) for r, x in zip(rk, g)]),
                                "errors": sum(o.error is not None for o in outs)}))
            print(f"  {len(lib):>6} {mid:<20} {rows[-1]['ms_per_query']:8.2f} ms/q  hit@5 {rows[-1]['hit@5']:.3f}", flush=True)
    return rows


# ---------------------------------------------------------------- 5. memory (child process)
def memory_child(lib_file: str) -> dict:
    "Run in a fresh process: RSS before/after building the BM25 and the dense index of the library in `lib_file` (vectors from the cache)."
    from sage_bench.core import Tool, ToolLibrary, read_jsonl
    tools, _ = read_jsonl(lib_file, Tool.from_dict)
    lib = ToolLibrary(tools, "memory")
    gc.collect()
    r0 = rss_mb()
    from sage_bench.methods.selection import EmbeddingSelector
    from sage_bench.retrieval import bm25_index, default_tokenizer
    from sage_bench.embed import get_embedder  # noqa: F401 - imported before measuring: imports are not index memory
    import bm25s, faiss  # noqa: F401 - imports are not index memory
    default_tokenizer()("warm up the tokenizer imports")
    gc.collect()
    r_import = rss_mb()
    ix = bm25_index(lib)
    r_bm25 = rss_mb()
    emb = EmbeddingSelector()
    dense = emb.dense_index(lib)
    r_dense = rss_mb()
    e = emb.embedder
    return dict(n_tools=len(lib), rss_start_mb=r0, rss_after_imports_mb=r_import, rss_after_bm25_mb=r_bm25, rss_after_dense_mb=r_dense,
                index_rss_mb=r_dense - r_import, bm25_bytes_mb=ix.nbytes / 2**20, dense_bytes_mb=dense.nbytes / 2**20,
                dense_backend=dense.backend, model_loaded=e._model is not None, embed_stats=e.stats)


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,5000,20000")
    ap.add_argument("--speed-queries", type=int, default=600, help="queries for the BM25 rate (bm25s and selector.keyword)")
    ap.add_argument("--rank-bm25-queries", type=int, default=60)
    ap.add_argument("--methods", default="selector.keyword,selector.embedding,selector.hybrid")
    ap.add_argument("--cache-dir", default=None, help="embedding cache root (default: a fresh temporary folder, so the first run is cold)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None, help="also write all measurements to this JSON file")
    ap.add_argument("--sections", default="1,2,3,4,5", help="which checks to run (comma-separated numbers)")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_child:
        print(json.dumps(memory_child(a.memory_child))); return
    tmp = None
    if a.cache_dir is None: tmp = tempfile.mkdtemp(prefix="sage-bench-embcache-"); a.cache_dir = tmp
    os.environ["SAGE_BENCH_CACHE"] = a.cache_dir
    if a.quick: a.speed_queries, a.rank_bm25_queries = 200, 20
    sizes = [int(x) for x in a.sizes.split(",")]
    res = {"sizes": sizes}
    print(f"cpu cores: {os.cpu_count()}, embedding cache: {a.cache_dir}")

    t0 = time.perf_counter()
    pool, by_src, datasets = real_tool_pool()
    print(f"real tool pool: {len(pool)} tools {by_src} ({time.perf_counter() - t0:.1f}s)")
    qs = query_set(datasets)
    print(f"quality queries: {len(qs)} (MetaTool + ToolBench, with their labels), {len({g for _, gs in qs for g in gs})} relevant tools")
    pool_all, sizes, note = sizes_pool(pool, sizes)
    if note: print("NOTE:", note)
    res.update(pool=len(pool), pool_sources=by_src, pool_note=note, sizes_run=sizes)

    # 1. BM25 speed on >= 10,000 real tools
    big = make_library(pool, [g for _, gs in qs for g in gs], min(len(pool), max(10000, min(len(pool), 20000))))
    speed_q = []
    for name in ("toolbench", "bfcl", "acebench", "apibank", "toolalpaca", "metatool"):
        if name in datasets: speed_q += [s.query for s in datasets[name].select("tool_selection")]
    speed_q = speed_q[: a.speed_queries] if len(speed_q) >= a.speed_queries else (speed_q * (a.speed_queries // max(1, len(speed_q)) + 1))[: a.speed_queries]
    secs = {int(x) for x in a.sections.split(",")}
    print(f"\n[1] BM25 query rate on {len(big)} real tools, {len(speed_q)} real queries (top-50)")
    b = bench_bm25(big, speed_q, a.rank_bm25_queries) if 1 in secs else None
    if b is not None: _print_bm25(a, b, speed_q, big, res)

    from sage_bench import embed  # noqa: F401 - loaded before the measurements
    from sage_bench.methods.selection import EmbeddingSelector  # noqa: F401
    lib_max = make_library(pool_all, [g for _, gs in qs for g in gs], max(sizes))
    if 2 in secs: _embedding_cache(lib_max, res)
    if 3 in secs: _dense(lib_max, qs, speed_q, res)
    if 4 in secs: _scaling(a, pool_all, qs, sizes, res)
    if 5 in secs: _memory(a, lib_max, res)
    if a.json:
        from sage_bench.core import write_json
        write_json(a.json, res); print(f"\nwrote {a.json}")
    if tmp:
        import shutil; shutil.rmtree(tmp, ignore_errors=True)


def _print_bm25(a, b, speed_q, big, res):
    r = b["rate"]
    print(f"  bm25s direct : {r['bm25s']:9.1f} q/s   (index {b['index_s']['bm25s']:.2f}s)")
    print(f"  keyword      : {r['keyword']:9.1f} q/s   (index {b['index_s']['keyword']:.2f}s)")
    print(f"  rank-bm25    : {r['rank_bm25']:9.1f} q/s   (index {b['index_s']['rank_bm25']:.2f}s, {min(a.rank_bm25_queries, len(speed_q))} queries)")
    b["ratio_vs_bm25s"] = r["keyword"] / r["bm25s"]; b["ratio_vs_rank_bm25"] = r["keyword"] / r["rank_bm25"]
    print(f"  ratio keyword/bm25s     = {b['ratio_vs_bm25s']:.2f}  (target >= 0.8: {'PASS' if b['ratio_vs_bm25s'] >= 0.8 else 'FAIL'})")
    print(f"  ratio keyword/rank-bm25 = {b['ratio_vs_rank_bm25']:.1f}  (target >= 10: {'PASS' if b['ratio_vs_rank_bm25'] >= 10 else 'FAIL'}; "
          f"library >= 10,000: {'yes' if len(big) >= 10000 else 'NO'})")
    print(f"  top-10 sets equal to bm25s's (queries of the first 50 whose 10th score is untied): {b['top10_set_agreement']:.2f}")
    res["bm25"] = b



def _embedding_cache(lib_max, res):
    "2. a first run of selector.embedding, then fresh embedders on the same library."
    from sage_bench import embed
    from sage_bench.methods.selection import EmbeddingSelector
    print(f"\n[2] embedding cache on a {len(lib_max)}-tool library")
    s1 = EmbeddingSelector(); t0 = time.perf_counter(); m1 = s1.embedder.encode_library(lib_max); t1 = time.perf_counter() - t0
    st1 = dict(s1.embedder.stats)
    print(f"  first run : {t1:7.1f}s  model={s1.embedder.name}  stats={st1}")
    embed._EMBEDDERS.clear()
    s2 = EmbeddingSelector(); t0 = time.perf_counter(); m2 = s2.embedder.encode_library(lib_max); t2 = time.perf_counter() - t0
    st2 = dict(s2.embedder.stats)
    print(f"  second run: {t2:7.2f}s  stats={st2}  (tools encoded again: {st2['misses']}; model loaded: {st2['model_loads'] > 0})")
    npy = s2.embedder.cache_folder / f"lib-{lib_max.fingerprint}.npy"
    if npy.exists(): npy.unlink()
    embed._EMBEDDERS.clear()
    s3 = EmbeddingSelector(); t0 = time.perf_counter(); m3 = s3.embedder.encode_library(lib_max); t3 = time.perf_counter() - t0
    st3 = dict(s3.embedder.stats)
    print(f"  third run without the library .npy (per-text SQLite only): {t3:.2f}s stats={st3}")
    ok = st2["misses"] == 0 and st3["misses"] == 0 and np.allclose(m1, m2) and np.allclose(m1, m3)
    print(f"  no tool encoded again: {'PASS' if ok else 'FAIL'}")
    res["embedding_cache"] = dict(n_tools=len(lib_max), first_s=t1, first=st1, second_s=t2, second=st2, third_s=t3, third=st3, ok=ok)


def _dense(lib_max, qs, speed_q, res):
    "3. numpy vs FAISS on the library's real vectors."
    from sage_bench import embed
    e = embed.get_embedder()
    m1 = e.encode_library(lib_max)
    print(f"\n[3] exact dense search, ms per query (64 queries, k=50, d={m1.shape[1]}, one thread); FAISS_MIN_TOOLS={embed.FAISS_MIN_TOOLS}")
    qv = e.encode([q for q, _ in qs][:64] + speed_q[: max(0, 64 - len(qs))], kind="query")
    rows = bench_dense_backends(m1, qv, [s for s in (500, 1000, 2000, 5000, 10000, 20000) if s <= len(m1)])
    print(f"  {'tools':>6} {'numpy b1':>9} {'faiss b1':>9} {'numpy b16':>10} {'faiss b16':>10}")
    for r in rows: print(f"  {r['n']:>6} {r['numpy_b1_ms']:9.3f} {r['faiss_b1_ms']:9.3f} {r['numpy_b16_ms']:10.3f} {r['faiss_b16_ms']:10.3f}")
    res["dense_backends"] = rows


def _scaling(a, pool_all, qs, sizes, res):
    "4. latency and quality by library size."
    methods = a.methods.split(",")
    qs_run = qs[:40] if a.quick else qs
    print(f"\n[4] latency and quality as the library grows ({len(qs_run)} queries, batches of 16; the smallest library is at least "
          f"the {len({g for _, gs in qs_run for g in gs})} relevant tools)")
    rows = scaling(pool_all, qs_run, sizes, methods)
    print(f"  {'tools':>6} {'method':<20} {'index s':>8} {'ms/query':>9} {'hit@1':>6} {'hit@5':>6} {'rec@5':>6} {'mrr':>6} {'ndcg@10':>7}")
    for r in rows:
        print(f"  {r['n_tools']:>6} {r['method']:<20} {r['index_s']:8.2f} {r['ms_per_query']:9.2f} {r['hit@1']:6.3f} {r['hit@5']:6.3f} "
              f"{r['recall@5']:6.3f} {r['mrr']:6.3f} {r['ndcg@10']:7.3f}")
    res["scaling"] = rows


def _memory(a, lib_max, res):
    "5. index memory of the largest library, in a fresh process that reads the exact library from a file."
    from sage_bench import embed
    from sage_bench.core import write_jsonl
    embed.get_embedder().encode_library(lib_max)          # every vector cached: the child never loads the model
    f = Path(a.cache_dir) / f"bench-library-{lib_max.fingerprint}.jsonl"
    write_jsonl(f, lib_max.tools, sort_keys=False)      # sorted keys would reorder parameters and change Tool.text()
    print(f"\n[5] resident memory of the indexes of a {len(lib_max)}-tool library (fresh process, vectors from the cache)")
    env = dict(os.environ, SAGE_BENCH_CACHE=a.cache_dir)
    p = subprocess.run([sys.executable, __file__, "--memory-child", str(f)], capture_output=True, text=True, env=env, cwd=str(ROOT))
    if p.returncode != 0:
        print("  memory child failed:", p.stderr[-2000:]); res["memory"] = {"error": p.stderr[-2000:]}; return
    mem = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"  RSS after imports {mem['rss_after_imports_mb']:.0f} MB -> after BM25 {mem['rss_after_bm25_mb']:.0f} MB -> after dense "
          f"({mem['dense_backend']}) {mem['rss_after_dense_mb']:.0f} MB; indexes = {mem['index_rss_mb']:.0f} MB resident "
          f"(BM25 matrix {mem['bm25_bytes_mb']:.1f} MB, dense {mem['dense_bytes_mb']:.1f} MB); model loaded: {mem['model_loaded']}; "
          f"embedder stats {mem['embed_stats']}")
    print(f"  indexes < 500 MB: {'PASS' if mem['index_rss_mb'] < 500 else 'FAIL'}; whole process {mem['rss_after_dense_mb']:.0f} MB")
    res["memory"] = mem


if __name__ == "__main__":
    main()

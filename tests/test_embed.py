"Tests of sage_bench.embed: model resolution, the disk cache and exact top-k search."
import numpy as np
import pytest
from sage_bench import embed
from sage_bench.core import DEFAULT_EMBEDDING_MODEL, OFFLINE_EMBEDDING_MODEL, Tool, ToolLibrary
from sage_bench.embed import Embedder, DenseIndex, get_embedder, resolve_model, bundled_model_path, query_prefix


def test_resolution_order(monkeypatch):
    monkeypatch.delenv(embed.EMBEDDING_MODEL_ENV, raising=False)
    name, src, how = resolve_model()
    if embed.local_hf_snapshot(DEFAULT_EMBEDDING_MODEL) is None:
        assert (name, how) == (OFFLINE_EMBEDDING_MODEL, "bundled offline default") and src == str(bundled_model_path())
    else:
        assert name == DEFAULT_EMBEDDING_MODEL
    monkeypatch.setenv(embed.EMBEDDING_MODEL_ENV, "someone/env-model")
    assert resolve_model() == ("someone/env-model", "someone/env-model", "env (hub)")
    assert resolve_model("minilm")[0] == OFFLINE_EMBEDDING_MODEL          # explicit beats env
    assert resolve_model(str(bundled_model_path()))[0] == OFFLINE_EMBEDDING_MODEL


def test_query_prefix():
    assert query_prefix("BAAI/bge-small-en-v1.5").startswith("Represent this sentence")
    assert query_prefix(OFFLINE_EMBEDDING_MODEL) == ""
    e = Embedder("BAAI/bge-small-en-v1.5", cache=False)                  # lazy: nothing is loaded here
    assert e.key("x", "query") != e.key("x", "passage")


def test_encode_cache_hits_across_instances(tmp_path):
    e = Embedder("minilm", cache_root=tmp_path)
    v = e.encode(["book a flight to Rome", "weather in Oslo", "book a flight to Rome"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5) and np.allclose(v[0], v[2])
    assert e.stats["misses"] == 2 and e.stats["hits"] == 0
    e2 = Embedder("minilm", cache_root=tmp_path)
    v2 = e2.encode(["weather in Oslo", "a new text"])                     # partial overlap
    assert e2.stats["hits"] == 1 and e2.stats["misses"] == 1 and np.allclose(v2[0], v[1], atol=1e-6)
    # semantic sanity: the weather query is closer to a weather text than to a flight text
    q = e2.encode(["what is the temperature in Oslo"])[0]
    assert q @ v[1] > q @ v[0]


def test_library_matrix_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "LIBRARY_NPY_MIN", 2)
    lib = ToolLibrary([Tool(id=f"t{i}", name=f"tool_{i}", description=d) for i, d in
                       enumerate(["send an email", "get the weather", "convert currency"])], "lib")
    e = Embedder("minilm", cache_root=tmp_path)
    m = e.encode_library(lib)
    assert m.shape == (3, 384) and (tmp_path / embed._slug(e.name) / f"lib-{lib.fingerprint}.npy").exists()
    e2 = Embedder("minilm", cache_root=tmp_path)
    m2 = e2.encode_library(lib)
    assert np.allclose(m, m2) and e2.stats["library_hits"] == 1 and e2.stats["misses"] == 0 and e2.stats["model_loads"] == 0


def test_unknown_model_fails_clearly(tmp_path, monkeypatch):
    import huggingface_hub.constants as hfc
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)       # already imported: the env var alone is read too late
    e = Embedder("someone/surely-not-a-model-xyz", cache_root=tmp_path)
    with pytest.raises(RuntimeError, match="surely-not-a-model-xyz"):
        e.encode(["x"])


def test_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        Embedder("minilm", cache_root=tmp_path).encode(["x"], kind="document")


def test_get_embedder_shared():
    assert get_embedder("minilm") is get_embedder(OFFLINE_EMBEDDING_MODEL)


@pytest.mark.parametrize("n", [50, 3000])
def test_dense_index_backends_agree(n):
    rng = np.random.default_rng(n)
    m = rng.normal(size=(n, 32)).astype(np.float32)
    q = rng.normal(size=(7, 32)).astype(np.float32)
    s1, i1 = DenseIndex(m, "numpy").search(q, 10)
    s2, i2 = DenseIndex(m, "faiss").search(q, 10)
    exact = np.argsort(-(q @ m.T), axis=1, kind="stable")[:, :10]
    assert (i1 == exact).all() and (i2 == exact).all() and np.allclose(s1, s2, atol=1e-4)
    assert DenseIndex(m).backend == ("faiss" if n >= embed.FAISS_MIN_TOOLS else "numpy")

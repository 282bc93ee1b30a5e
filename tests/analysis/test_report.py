"""The analysis report: every plot drawn, embedded in a self-contained HTML, data strings escaped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from intentrec.analysis.clusters import cluster_embeddings, embed_2d
from intentrec.analysis.inference import IntentReadout
from intentrec.analysis.intents import alignment, cluster_profiles, intent_shifts, primary_intents
from intentrec.analysis.report import analysis_summary, write_analysis_report
from intentrec.structs import AttributeSpec, DataSpec, EncodedSequences, Split
from intentrec.vocab import ItemVocab, LabelVocab

EVIL = "<script>alert(1)</script>"
N_USERS, N_EVENTS = 30, 6


def _data() -> EncodedSequences:
    rng = np.random.default_rng(0)
    n = N_USERS * N_EVENTS
    genre = rng.integers(1, 5, size=(n, 2))  # (N, 2) labels 1..4, second slot sometimes empty
    genre[rng.random(n) < 0.5, 1] = 0
    return EncodedSequences(
        user_ids=(EVIL, *(f"user{i}" for i in range(1, N_USERS))),
        offsets=np.arange(0, n + 1, N_EVENTS, dtype=np.int64),
        item_idx=rng.integers(2, 8, size=n).astype(np.int64),
        timestamps=np.arange(n, dtype=np.float64),
        duration=np.ones(n, dtype=np.float32),
        session=np.tile(np.array([0, 0, 1, 1, 2, 2]), N_USERS).astype(np.int64),
        categorical={"genre": genre.astype(np.int64), "repeat": rng.integers(2, 4, size=n).astype(np.int64)},
        numeric=np.zeros((n, 0), dtype=np.float32),
        split=Split(train_len=np.zeros(N_USERS, dtype=np.int64), val_targets=np.zeros((0, 2), dtype=np.int64),
                    test_targets=np.zeros((0, 2), dtype=np.int64), protocol="user"),
        spec=DataSpec(n_items=8, attributes=(AttributeSpec("genre", 5, True, True, True),
                                             AttributeSpec("repeat", 4, False, True, True)), numeric=(), timed=True),
        item_vocab=ItemVocab(tuple("abcdef")),
        label_vocabs={"genre": LabelVocab.from_labels("genre", ["Drama", "<b>Comedy</b>", "Anime"]),
                      "repeat": LabelVocab.from_labels("repeat", ["new", "repeat"])},
    )


def _readout(targets: np.ndarray, fused: bool, seed: int) -> IntentReadout:
    rng = np.random.default_rng(seed)
    t = targets.shape[0]

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    blob = np.arange(t) % 3  # three groups of users with distinct embeddings and attention
    z = (np.eye(3, 4)[blob] * 10 + rng.normal(scale=0.3, size=(t, 4))).astype(np.float32)
    att = softmax(np.eye(3, 2)[blob] * 2 + rng.normal(scale=0.2, size=(t, 2)))
    return IntentReadout(
        targets=targets, head_names=("genre", "repeat"),
        intent_probs={"genre": softmax(rng.normal(size=(t, 5))), "repeat": softmax(rng.normal(size=(t, 4)))},
        attention=att if fused else None, intent_embedding=z if fused else None,
        window_events=np.full(t, 3), input_events=np.full(t, 5),
        top_items=np.zeros((t, 0), dtype=np.int64), top_scores=np.zeros((t, 0), dtype=np.float32),
    )


def _html_images(html: str) -> int:
    return html.count("data:image/png;base64,")


def test_full_report_renders_every_plot(tmp_path: Path) -> None:
    data = _data()
    last = np.stack([np.arange(N_USERS), np.full(N_USERS, N_EVENTS - 1)], axis=1).astype(np.int64)
    sess = np.array([(u, p) for u in range(N_USERS) for p in (2, 4)], dtype=np.int64)
    ro, rs = _readout(last, True, 1), _readout(sess, True, 2)
    cl = cluster_embeddings(ro.intent_embedding, k=3, k_range=range(2, 6), n_init=2, seed=0)
    xy = embed_2d(cl.z_std, method="pca")
    profiles = cluster_profiles(ro, data, cl, nearest=N_USERS)
    pr, sh, al = primary_intents(ro), intent_shifts(rs), alignment(ro, data, cl.labels)
    files = write_analysis_report(
        tmp_path / "out", title="Analysis <b>run</b>", run_info={"model": "IntentRec V3", "K": 3, "seed": 0},
        clusters=cl, embedding_2d=xy, profiles=profiles, primary=pr, shifts=sh, alignment=al, map_method="PCA",
    )
    plots = {"cluster_map", "silhouette", "cluster_sizes", "attention_by_cluster", "primary_intents",
             "primary_by_session", "transitions", "alignment", "alignment_by_cluster"}
    assert set(files) == plots | {"report_md", "report_html"}
    for key in plots:
        assert files[key].is_file() and files[key].parent.name == "plots"
        assert files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = files["report_html"].read_text(encoding="utf-8")
    md = files["report_md"].read_text(encoding="utf-8")
    assert _html_images(html) == len(plots)
    # self-contained and escaped: no scripts, no external resources, the user id and labels escaped
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 1
    assert "&lt;b&gt;Comedy&lt;/b&gt;" in html and "<b>Comedy" not in html
    assert "<title>Analysis &lt;b&gt;run&lt;/b&gt;</title>" in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert 'href="#clusters"' in html and 'id="clusters"' in html  # table of contents
    # markdown links the PNGs relatively, one per plot, and every link resolves
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted(f"plots/{k}.png" for k in plots)
    assert all((files["report_md"].parent / link).is_file() for link in links)
    assert "<script>" not in md
    assert "IntentRec V3" in md and "Cluster 0" in md
    # nothing half-written is left behind
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]
    doc = analysis_summary(run_info={"K": 3}, clusters=cl, profiles=profiles, primary=pr, shifts=sh, alignment=al)
    assert doc["clusters"]["k"] == 3 and len(doc["profiles"]) == 3


def test_no_fusion_report_is_alignment_only(tmp_path: Path) -> None:
    data = _data()
    last = np.stack([np.arange(N_USERS), np.full(N_USERS, N_EVENTS - 1)], axis=1).astype(np.int64)
    ro = _readout(last, False, 3)
    files = write_analysis_report(
        tmp_path, title="Baseline", run_info={"model": "SASRec"}, clusters=None, embedding_2d=None,
        profiles=None, primary=None, shifts=None, alignment=alignment(ro, data, None),
    )
    assert set(files) == {"report_md", "report_html", "alignment"}
    html = files["report_html"].read_text(encoding="utf-8")
    md = files["report_md"].read_text(encoding="utf-8")
    assert _html_images(html) == 1
    for text in (html, md):
        assert "this model has no intent attention" in text and "IntentRec V2/V3" in text
        assert "Alignment with the next interaction" in text


def test_embedding_2d_shape_is_checked(tmp_path: Path) -> None:
    data = _data()
    last = np.stack([np.arange(N_USERS), np.full(N_USERS, N_EVENTS - 1)], axis=1).astype(np.int64)
    ro = _readout(last, True, 4)
    cl = cluster_embeddings(ro.intent_embedding, k=2, k_range=None, n_init=1)
    with pytest.raises(ValueError, match="embedding_2d"):
        write_analysis_report(tmp_path, title="x", run_info={}, clusters=cl, embedding_2d=np.zeros((3, 2)),
                              profiles=None, primary=None, shifts=None, alignment=alignment(ro, data, None))

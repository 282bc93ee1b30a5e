"""The intent-analysis report (PAPER §6.7): plots, ``report.md`` and a self-contained ``report.html``.

The report is built once as a small list of blocks (headings, paragraphs, tables, figures) and rendered twice:
to Markdown (PNG links relative to the report) and to HTML (PNGs embedded as base64 data URIs, inline CSS, no
scripts or external resources, every data string escaped). Plots are drawn with matplotlib's Agg backend,
selected inside :func:`write_analysis_report` (never at import). Every file is written atomically.

Models without intent fusion (no attention, no Z) get an alignment-only report with a note saying why.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from intentrec.analysis.clusters import ClusterResult
from intentrec.analysis.intents import (
    NO_FUSION_NOTE,
    AlignmentTable,
    ClusterProfile,
    PrimaryIntents,
    ShiftSummary,
)
from intentrec.train.checkpoint import atomic_write_bytes

__all__ = ["REPORT_HTML", "REPORT_MD", "analysis_summary", "write_analysis_report"]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
_DPI = 110
_MAX_SESSIONS_PLOTTED = 12


# ------------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------------


def _pct(x: float, digits: int = 1) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def _num(x: float, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _session_label(s: int) -> str:
    """Row ``s`` of ``by_session_from_end`` (0 = latest) as an axis label."""
    return "last" if s == 0 else f"last−{s}"


# ------------------------------------------------------------------------------------------------------
# document model
# ------------------------------------------------------------------------------------------------------


@dataclass
class _Doc:
    """Blocks shared by the Markdown and HTML renderers."""

    blocks: list[tuple[Any, ...]] = field(default_factory=list)
    _anchors: set[str] = field(default_factory=set)

    def heading(self, level: int, text: str) -> None:
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        anchor, i = base, 2
        while anchor in self._anchors:
            anchor, i = f"{base}-{i}", i + 1
        self._anchors.add(anchor)
        self.blocks.append(("h", level, text, anchor))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def note(self, text: str) -> None:
        self.blocks.append(("note", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if rows:
            self.blocks.append(("table", list(header), [list(r) for r in rows]))

    def figure(self, key: str, caption: str) -> None:
        self.blocks.append(("fig", key, caption))


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _md_text(text: str) -> str:
    return str(text).replace("<", "&lt;")


def _render_md(doc: _Doc, plots: Mapping[str, Path], root: Path) -> str:
    out: list[str] = []
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            out += [f"{'#' * b[1]} {_md_text(b[2])}", ""]
        elif kind == "p":
            out += [_md_text(b[1]), ""]
        elif kind == "note":
            out += [f"> **Note:** {_md_text(b[1])}", ""]
        elif kind == "ul":
            out += [f"- {_md_text(x)}" for x in b[1]] + [""]
        elif kind == "table":
            header, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("")
        elif kind == "fig" and b[1] in plots:
            rel = plots[b[1]].relative_to(root).as_posix()
            out += [f"![{_md_cell(b[2])}]({rel})", "", f"*{_md_text(b[2])}*", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
 color:#1f2328;background:#fff;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:1.8em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.4em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fbfcfd}
figure{margin:1em 0 1.6em;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.85em;color:#57606a;margin-top:.3em}
nav.toc{background:#f6f8fa;border:1px solid #d0d7de;padding:8px 16px;border-radius:6px;font-size:.92em}
nav.toc ul{margin:.2em 0;padding-left:1.3em}
.note{background:#fff8c5;border-left:4px solid #d4a72c;padding:8px 12px;margin:1em 0}
a{color:#0969da;text-decoration:none}
a:hover{text-decoration:underline}
"""


def _render_html(doc: _Doc, plots: Mapping[str, Path], title: str) -> str:
    esc = html.escape
    entries = [(b[1], b[2], b[3]) for b in doc.blocks if b[0] == "h" and b[1] in (2, 3)]
    toc: list[str] = []
    for i, (level, text, anchor) in enumerate(entries):
        if level == 3 and (i == 0 or entries[i - 1][0] == 2):
            toc.append("<ul>")  # sub-list inside the open h2 item
        toc.append(f'<li><a href="#{esc(anchor)}">{esc(text)}</a>')
        nxt = entries[i + 1][0] if i + 1 < len(entries) else 2
        if level == 3:
            toc.append("</li>")
            if nxt == 2:
                toc.append("</ul></li>")
        elif nxt == 2:
            toc.append("</li>")
    toc = ["<ul>", *toc, "</ul>"] if entries else []
    body: list[str] = []
    toc_done = False
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            if b[1] == 2 and not toc_done and toc:
                body.append('<nav class="toc"><strong>Contents</strong>' + "".join(toc) + "</nav>")
                toc_done = True
            body.append(f'<h{b[1]} id="{esc(b[3])}">{esc(b[2])}</h{b[1]}>')
        elif kind == "p":
            body.append(f"<p>{esc(b[1])}</p>")
        elif kind == "note":
            body.append(f'<div class="note"><strong>Note:</strong> {esc(b[1])}</div>')
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "fig" and b[1] in plots:
            data = base64.b64encode(plots[b[1]].read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{esc(b[2])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{esc(b[2])}</figcaption></figure>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(body) + "\n</main></body></html>\n"
    )


# ------------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------------


class _Plotter:
    """Draws figures with pyplot (Agg) and saves them atomically under ``plots/``."""

    def __init__(self, plot_dir: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")  # headless; set here, never at import
        import matplotlib.pyplot as plt

        self.plt = plt
        self.dir = plot_dir
        self.files: dict[str, Path] = {}

    def save(self, key: str, fig: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"{key}.png"
        tmp = self.dir / f".{key}.tmp-{secrets.token_hex(6)}.png"
        try:
            fig.tight_layout()
            fig.savefig(tmp, dpi=_DPI, format="png", bbox_inches="tight")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
            self.plt.close(fig)
        self.files[key] = final

    def colors(self, k: int) -> list[Any]:
        cmap = self.plt.get_cmap("tab10" if k <= 10 else "tab20")
        return [cmap(i % cmap.N) for i in range(k)]

    def heatmap(
        self, key: str, values: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str,
        xlabel: str, ylabel: str, fmt: Callable[[float], str], cbar: str, cmap: str = "viridis",
        vmin: float | None = None, vmax: float | None = None, annotations: np.ndarray | None = None,
    ) -> None:
        v = np.asarray(values, dtype=np.float64)  # (R, C)
        finite = v[np.isfinite(v)]
        lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
        hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        fig, ax = self.plt.subplots(figsize=(max(4.5, 1.1 * len(cols) + 2.8), max(2.6, 0.42 * len(rows) + 1.6)))
        im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_xticks(range(len(cols)), labels=list(cols), rotation=30 if len(cols) > 3 else 0,
                      ha="right" if len(cols) > 3 else "center")
        ax.set_yticks(range(len(rows)), labels=list(rows))
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                text = annotations[i, j] if annotations is not None else fmt(v[i, j])
                r, g, b, _ = im.cmap(im.norm(v[i, j])) if math.isfinite(v[i, j]) else (1.0, 1.0, 1.0, 1.0)
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # perceived luminance of the cell
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(im, ax=ax, label=cbar, shrink=0.85)
        self.save(key, fig)


def _plot_clusters(p: _Plotter, clusters: ClusterResult, xy: np.ndarray | None, map_method: str) -> None:
    k = clusters.k
    sizes = clusters.sizes()
    colors = p.colors(k)
    if xy is not None and xy.shape[0] == clusters.n and clusters.n:
        fig, ax = p.plt.subplots(figsize=(8.6, 6.4))
        n = clusters.n
        dot = float(np.clip(4000.0 / n, 2.0, 36.0))
        order = np.argsort(-sizes[clusters.labels], kind="stable")  # draw large clusters first, small on top
        ax.scatter(xy[order, 0], xy[order, 1], s=dot, c=[colors[c] for c in clusters.labels[order]],
                   alpha=0.75, linewidths=0)
        for c in range(k):
            members = clusters.labels == c
            if not members.any():
                continue
            cx, cy = np.median(xy[members], axis=0)
            ax.scatter([cx], [cy], marker="X", s=170, c=[colors[c]], edgecolors="black", linewidths=1.2, zorder=3)
            ax.annotate(str(c), (cx, cy), xytext=(6, 6), textcoords="offset points", fontsize=10,
                        fontweight="bold", zorder=4)
        handles = [p.plt.Line2D([], [], marker="o", ls="", color=colors[c],
                                label=f"C{c} · {sizes[c]:,} ({sizes[c] / max(n, 1):.0%})") for c in range(k)]
        handles.append(p.plt.Line2D([], [], marker="X", ls="", color="grey", markeredgecolor="black",
                                    markersize=9, label="cluster centre"))
        ax.legend(handles=handles, title="cluster · users", loc="center left", bbox_to_anchor=(1.01, 0.5),
                  frameon=False, fontsize=9)
        ax.set_title(f"Users by intent embedding Z ({map_method}), coloured by K-means++ cluster (K = {k})")
        ax.set_xlabel(f"{map_method} 1")
        ax.set_ylabel(f"{map_method} 2")
        ax.set_xticks([])
        ax.set_yticks([])
        p.save("cluster_map", fig)

    if clusters.silhouette:
        ks = sorted(clusters.silhouette)
        fig, ax = p.plt.subplots(figsize=(6.4, 3.8))
        ax.plot(ks, [clusters.silhouette[x] for x in ks], marker="o", color="#0969da")
        if k in clusters.silhouette:
            ax.scatter([k], [clusters.silhouette[k]], s=120, facecolors="none", edgecolors="crimson", zorder=3,
                       linewidths=2)
        ax.axvline(k, color="crimson", ls="--", lw=1, label=f"K used = {k}")
        if clusters.best_k is not None:
            ax.scatter([clusters.best_k], [clusters.silhouette[clusters.best_k]], marker="*", s=160,
                       color="#d4a72c", zorder=4, label=f"best silhouette: K = {clusters.best_k}")
        ax.set_xticks(ks)
        ax.set_xlabel("number of clusters K")
        ax.set_ylabel("silhouette score (higher = better separated)")
        ax.set_title("Silhouette score vs K (standardised Z)")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=9)
        p.save("silhouette", fig)

    fig, ax = p.plt.subplots(figsize=(max(5.0, 0.55 * k + 2.5), 3.8))
    bars = ax.bar(range(k), sizes, color=colors)
    for rect, s in zip(bars, sizes, strict=True):
        ax.annotate(f"{s:,}\n{s / max(clusters.n, 1):.0%}", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(k), labels=[f"C{c}" for c in range(k)])
    ax.set_xlabel("cluster")
    ax.set_ylabel("users")
    ax.set_ylim(0, max(1, int(sizes.max(initial=0))) * 1.22)
    ax.set_title(f"Cluster sizes ({clusters.n:,} users)")
    p.save("cluster_sizes", fig)


def _plot_attention(p: _Plotter, profiles: Sequence[ClusterProfile], primary: PrimaryIntents) -> None:
    heads = list(primary.head_names)
    rows = ["all users", *[f"C{pr.cluster} ({pr.size:,})" for pr in profiles]]
    values = np.array([primary.mean_attention.tolist()]
                      + [[pr.attention.get(h, math.nan) for h in heads] for pr in profiles])  # (K+1, M)
    spread = float(np.nanmax(values) - np.nanmin(values)) if values.size else 0.0
    p.heatmap("attention_by_cluster", values, rows, heads, title="Mean attention weight per cluster and intent",
              xlabel="intent head", ylabel="cluster (users)", cbar="mean attention",
              fmt=(lambda x: _num(x, 3)) if spread >= 0.01 else (lambda x: _num(x, 4)))


def _plot_primary(p: _Plotter, primary: PrimaryIntents) -> None:
    heads = list(primary.head_names)
    m = len(heads)
    fig, (a1, a2) = p.plt.subplots(1, 2, figsize=(10.0, max(2.8, 0.45 * m + 1.6)))
    y = np.arange(m)
    shares = primary.shares
    a1.barh(y, shares, color="#0969da")
    for i in range(m):
        a1.annotate(f"{shares[i]:.1%} ({int(primary.counts[i]):,})", (shares[i], i), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    a1.set_yticks(y, labels=heads)
    a1.invert_yaxis()
    a1.set_xlim(0, min(1.0, float(shares.max(initial=0)) * 1.35 + 0.05))
    a1.set_xlabel("share of users")
    a1.set_title("Primary intent (largest attention weight)")
    a2.barh(y, primary.mean_attention, color="#8250df")
    spread = float(np.ptp(primary.mean_attention)) if m else 0.0
    for i in range(m):
        a2.annotate(_num(float(primary.mean_attention[i]), 3 if spread >= 0.01 else 4), (primary.mean_attention[i], i),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    if m:
        a2.axvline(1.0 / m, color="grey", ls=":", lw=1, label=f"uniform 1/M = {1.0 / m:.2f}")
        a2.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    a2.set_yticks(y, labels=heads)
    a2.invert_yaxis()
    a2.set_xlim(0, min(1.0, float(primary.mean_attention.max(initial=0)) * 1.35 + 0.05))
    a2.set_xlabel("mean attention weight")
    a2.set_title("Mean attention per intent head")
    p.save("primary_intents", fig)


def _plot_shifts(p: _Plotter, shifts: ShiftSummary) -> None:
    heads = list(shifts.head_names)
    counts = shifts.by_session_from_end[:_MAX_SESSIONS_PLOTTED]  # (S, M) row 0 = latest
    if counts.size and counts.sum():
        counts = counts[::-1]  # oldest first, time flows left to right
        depth = counts.shape[0]
        totals = counts.sum(axis=1)  # (S,)
        shares = counts / np.maximum(totals[:, None], 1)  # (S, M)
        colors = p.colors(len(heads))
        fig, ax = p.plt.subplots(figsize=(max(5.5, 0.6 * depth + 3.5), 4.2))
        bottom = np.zeros(depth)
        x = np.arange(depth)
        for i, h in enumerate(heads):
            ax.bar(x, shares[:, i], bottom=bottom, color=colors[i], label=h, width=0.75)
            for j in np.flatnonzero(shares[:, i] >= 0.08):  # label the segments big enough to hold text
                ax.text(j, bottom[j] + shares[j, i] / 2, f"{shares[j, i]:.0%}", ha="center", va="center",
                        fontsize=7, color="white")
            bottom += shares[:, i]
        for j in range(depth):
            ax.annotate(f"n={int(totals[j]):,}", (j, 1.0), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, labels=[_session_label(depth - 1 - j) for j in range(depth)],
                      rotation=30 if depth > 6 else 0)
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("session start, counted from each user's latest")
        ax.set_ylabel("share of users")
        ax.set_title("Primary intent at session starts over time")
        ax.legend(title="primary intent", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        p.save("primary_by_session", fig)
    t = shifts.transitions.astype(np.float64)  # (M, M)
    if t.sum() > 0:
        row = t / np.maximum(t.sum(axis=1, keepdims=True), 1)  # (M, M) from -> share of next
        ann = np.array([[f"{row[i, j]:.0%}\n({int(t[i, j]):,})" if t[i].sum() else "–" for j in range(len(heads))]
                        for i in range(len(heads))])
        p.heatmap("transitions", row, heads, heads, title="Primary intent: session start → next session start",
                  xlabel="next session's primary intent", ylabel="this session's primary intent",
                  cbar="share of this row", cmap="Blues", vmin=0.0, vmax=1.0, annotations=ann, fmt=_pct)


def _plot_alignment(p: _Plotter, al: AlignmentTable) -> None:
    heads = [h for h in al.head_names if al.overall[h].n]
    if heads:
        fig, ax = p.plt.subplots(figsize=(max(5.5, 1.5 * len(heads) + 3.0), 4.0))
        x = np.arange(len(heads))
        w = 0.26
        series = [("top-1 aligned", [al.overall[h].rate for h in heads], "#0969da"),
                  ("any of top-3", [al.overall[h].rate_top3 for h in heads], "#54aeff"),
                  ("chance: most common label", [al.overall[h].baseline_rate for h in heads], "#afb8c1")]
        for i, (label, vals, color) in enumerate(series):
            bars = ax.bar(x + (i - 1) * w, vals, w, label=label, color=color)
            for rect, v in zip(bars, vals, strict=True):
                ax.annotate(f"{v:.0%}", (rect.get_x() + rect.get_width() / 2, rect.get_height()), xytext=(0, 1),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, labels=[f"{h}\n(n={al.overall[h].n:,})" for h in heads])
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("share of users")
        ax.set_xlabel("intent head")
        ax.set_title("Predicted intent vs the next interaction's label")
        ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        p.save("alignment", fig)
    if al.per_cluster and heads:
        clusters = sorted(al.per_cluster)
        cols = [*heads, "mean"] + (["primary"] if al.primary is not None else [])
        rows = ["all users", *[f"C{c}" for c in clusters]]

        def line(stats: Mapping[str, Any], mean: float, prim: Any) -> list[float]:
            vals = [stats[h].rate for h in heads] + [mean]
            return vals + ([prim.rate if prim is not None else math.nan] if al.primary is not None else [])

        values = np.array([line(al.overall, al.mean_rate(), al.primary)]
                          + [line(al.per_cluster[c], al.mean_rate(c), al.primary_per_cluster.get(c))
                             for c in clusters])  # (K+1, M+2)
        p.heatmap("alignment_by_cluster", values, rows, cols, title="Top-1 alignment with the next interaction",
                  xlabel="intent head (mean: over heads; primary: each user's primary-intent head)", ylabel="cluster",
                  cbar="share aligned", cmap="RdYlGn", vmin=0.0,
                  vmax=1.0, fmt=lambda v: _pct(v, 0))


# ------------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------------


def _summary(
    doc: _Doc, clusters: ClusterResult | None, primary: PrimaryIntents | None, shifts: ShiftSummary | None,
    al: AlignmentTable, profiles: Sequence[ClusterProfile] | None,
) -> None:
    doc.heading(2, "Summary")
    items: list[str] = []
    if clusters is not None:
        sizes = clusters.sizes()
        sil = clusters.silhouette.get(clusters.k)
        text = (f"{clusters.n:,} users in K = {clusters.k} clusters; the largest holds {_pct(sizes[0] / clusters.n)}"
                f" and the smallest {_pct(sizes[-1] / clusters.n)} of users.")
        if sil is not None:
            text += f" Silhouette at K = {clusters.k}: {sil:.3f}"
            if clusters.best_k is not None and clusters.best_k != clusters.k:
                text += f" (best in the range: K = {clusters.best_k}, {clusters.silhouette[clusters.best_k]:.3f})"
            text += "."
        items.append(text)
    if primary is not None and primary.n:
        order = np.argsort(-primary.shares, kind="stable")
        lead = ", ".join(f"{primary.head_names[i]} {_pct(primary.shares[i])}" for i in order if primary.counts[i])
        items.append(f"Primary intent (largest attention weight): {lead}.")
        margin = float(primary.margin.mean())
        if margin < 0.01:
            items.append(f"Attention is nearly uniform (mean gap between the top two weights: {margin:.4f}): "
                         "primary intents are decided by tiny margins and should be read with care.")
    if shifts is not None and shifts.n_pairs:
        items.append(f"Between consecutive session starts the primary intent changes in "
                     f"{_pct(shifts.change_rate)} of {shifts.n_pairs:,} pairs ({shifts.users.size:,} users).")
    for h in al.head_names:
        s = al.overall[h]
        if s.n:
            diff = s.rate - s.baseline_rate
            items.append(f"{h}: the top-1 prediction matches the next interaction for {_pct(s.rate)} of "
                         f"{s.n:,} users (top-3: {_pct(s.rate_top3)}; always predicting "
                         f"'{al.baseline_label[h]}': {_pct(s.baseline_rate)}, {100 * diff:+.1f} points).")
    if profiles:
        items.append("Cluster hints: " + "; ".join(f"C{p.cluster}: {p.description}" for p in profiles[:3])
                     + ("; …" if len(profiles) > 3 else "") + " (see Clusters).")
    doc.bullets(items)


def _run_section(doc: _Doc, run_info: Mapping[str, Any], clusters: ClusterResult | None, map_method: str) -> None:
    doc.heading(2, "Run")
    rows = [[str(k), _fmt_value(v)] for k, v in run_info.items()]
    if clusters is not None:
        rows.append(["clustering", f"K-means++ on standardised Z, K = {clusters.k}, n_init = {clusters.n_init}, "
                                   f"seed = {clusters.seed}, dim = {clusters.z_std.shape[1]}"])
        rows.append(["2-D map", map_method])
    doc.table(["setting", "value"], rows)


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_fmt_value(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_fmt_value(x) for x in v)
    return str(v)


def _clusters_section(
    doc: _Doc, clusters: ClusterResult | None, profiles: Sequence[ClusterProfile] | None, map_method: str,
    fused: bool,
) -> None:
    doc.heading(2, "Clusters")
    if clusters is None:
        doc.note("Clustering was not run for this report." if fused else NO_FUSION_NOTE + ".")
        return
    doc.para(f"Users are clustered with K-means++ on their intent embedding Z at the prediction of their last "
             f"interaction (standardised per dimension). The {map_method} map keeps neighbourhoods, not global "
             "distances: read it for which users sit together, not for how far apart clusters are. Centres (X) "
             "are the median map position of each cluster's members. Clusters are numbered by size.")
    doc.figure("cluster_map", f"Users by intent embedding ({map_method}), coloured by cluster")
    doc.figure("silhouette", "Silhouette score vs K (the configured K is marked)")
    doc.figure("cluster_sizes", "Users per cluster")
    doc.figure("attention_by_cluster", "Mean attention weight per cluster and intent head")
    if not profiles:
        return
    heads = [s.head for s in profiles[0].intents]
    doc.table(
        ["cluster", "users", "share", "hint", *[f"top {h}" for h in heads], "mean distance"],
        [[f"C{p.cluster}", f"{p.size:,}", _pct(p.share), p.description,
          *[f"{s.label} ({_pct(s.share, 0)})" for s in p.intents], _num(p.mean_distance, 2)] for p in profiles],
    )
    doc.para("Hints are generated from what sets a cluster apart (predicted labels much more common than over all "
             "users, above-average attention, history labels with a high lift); naming the cluster is up to you.")
    for p in profiles:
        doc.heading(3, f"Cluster {p.cluster}: {p.size:,} users ({_pct(p.share)})")
        doc.para(f"Hint: {p.description}. Mean distance to the centre: {_num(p.mean_distance, 2)}.")
        doc.table(
            ["intent", "top predicted label", "share in cluster", "share overall", "mean probability",
             "mean attention", "primary for"],
            [[s.head, s.label, _pct(s.share), _pct(s.overall_share), _num(s.mean_prob, 3),
              _num(p.attention.get(s.head, math.nan), 3), _pct(p.primary_shares.get(s.head, math.nan))]
             for s in p.intents],
        )
        if p.attributes:
            doc.para(f"Recent history: the last {p.history} events before each member's prediction "
                     f"({p.history_events:,} events). Share = events carrying the label; lift = share / share "
                     "among all users' recent events.")
            doc.table(
                ["attribute", "most frequent labels (share, lift)", "most distinctive (lift, share)"],
                [[a, ", ".join(f"{x.label} ({_pct(x.share, 0)}, ×{_num(x.lift, 2)})" for x in xs),
                  ", ".join(f"{x.label} (×{_num(x.lift, 2)}, {_pct(x.share, 0)})" for x in p.distinctive.get(a, ()))
                  or "–"]
                 for a, xs in p.attributes.items()],
            )
        if p.top_items:
            doc.table(["top item", "events", "users"],
                      [[it.name, f"{it.count:,}", f"{it.users:,}"] for it in p.top_items])
        if p.nearest_users:
            doc.para(f"Users nearest the centre ({len(p.nearest_users)}): " + ", ".join(p.nearest_users))


def _primary_section(doc: _Doc, primary: PrimaryIntents | None) -> None:
    doc.heading(2, "Primary intents")
    if primary is None:
        doc.note(NO_FUSION_NOTE + ".")
        return
    doc.para("A user's primary intent is the intent head with the largest attention weight in the fusion "
             "(PAPER §4.5). The gap to the runner-up says how decisive it is.")
    doc.figure("primary_intents", "Primary-intent distribution and mean attention per head")
    pj = primary.to_json()["heads"]
    doc.table(["intent", "users", "share", "mean attention", "mean weight when primary"],
              [[h, f"{pj[h]['count']:,}", _pct(float(primary.shares[i])), _num(float(primary.mean_attention[i]), 4),
                _num(pj[h]["mean_weight_when_primary"] if pj[h]["mean_weight_when_primary"] is not None
                     else math.nan, 4)]
               for i, h in enumerate(primary.head_names)])
    if primary.n:
        doc.para(f"Mean primary weight {primary.weight.mean():.4f}; mean gap to the runner-up "
                 f"{primary.margin.mean():.4f}.")


def _shifts_section(doc: _Doc, shifts: ShiftSummary | None, fused: bool) -> None:
    doc.heading(2, "Intent shifts over sessions")
    if shifts is None:
        doc.note(NO_FUSION_NOTE + "." if not fused else
                 "No session-start read-out was given, so shifts over time are not shown.")
        return
    js = shifts.to_json()
    doc.para("The primary intent of each user at the start of each of their sessions (the prediction made when "
             "the session begins), in time order.")
    doc.bullets([
        f"{js['n_users']:,} users, {js['n_session_starts']:,} session starts "
        f"({_num(js['mean_session_starts_per_user'] or math.nan, 2)} per user).",
        f"Primary intent changes in {_pct(shifts.change_rate)} of {shifts.n_pairs:,} consecutive session pairs; "
        f"{_pct(js['share_of_users_who_change'] if js['share_of_users_who_change'] is not None else math.nan)} "
        "of users with two or more sessions change at least once.",
        "Distinct primary intents per user: "
        + ", ".join(f"{k}: {v:,} users" for k, v in js["distinct_histogram"].items()) + ".",
    ])
    doc.figure("primary_by_session", "Primary intent at session starts, counted back from each user's latest")
    doc.figure("transitions", "Transitions of the primary intent between consecutive session starts")
    heads = list(shifts.head_names)
    if shifts.n_pairs:
        doc.table(["from \\ to", *heads, "changes"],
                  [[h, *[f"{int(shifts.transitions[i, j]):,}" for j in range(len(heads))],
                    _pct(1 - shifts.transitions[i, i] / shifts.transitions[i].sum())
                    if shifts.transitions[i].sum() else "–"]
                   for i, h in enumerate(heads)])


def _alignment_section(doc: _Doc, al: AlignmentTable) -> None:
    doc.heading(2, "Alignment with the next interaction")
    doc.para("Does the predicted intent agree with the label of the interaction that actually came next? "
             "Single-label heads: the top-1 label equals the actual one; multi-label heads: the top-1 label is one "
             "of the actual labels. Users whose next interaction has no label for a head are skipped. The chance "
             "reference always predicts the most common next label. A mismatch can be legitimate (PAPER §5: a "
             "sudden switch, e.g. from movies to a TV show).")
    doc.figure("alignment", "Alignment per intent head: top-1, top-3 and the chance reference")
    rows = [[h, "multi-label" if al.multi_label[h] else "single-label", f"{s.n:,}", _pct(s.rate),
             _pct(s.rate_top3), f"{_pct(s.baseline_rate)} ({al.baseline_label[h]})"]
            for h, s in al.overall.items()]
    rows.append(["mean over heads", "", "", _pct(al.mean_rate()), "", ""])
    if al.primary is not None:
        rows.append(["primary-intent head", "", f"{al.primary.n:,}", _pct(al.primary.rate),
                     _pct(al.primary.rate_top3), _pct(al.primary.baseline_rate)])
    doc.table(["intent", "type", "users", "top-1 aligned", "any of top-3", "chance (most common label)"], rows)
    if al.per_cluster:
        doc.figure("alignment_by_cluster", "Top-1 alignment per cluster and intent head")
        heads = list(al.head_names)
        header = ["cluster", *[f"{h} (n)" for h in heads], "mean"] + (["primary head"] if al.primary else [])
        body = []
        for c in sorted(al.per_cluster):
            st = al.per_cluster[c]
            r = [f"C{c}", *[f"{_pct(st[h].rate)} ({st[h].n:,})" for h in heads], _pct(al.mean_rate(c))]
            if al.primary is not None:
                pc = al.primary_per_cluster.get(c)
                r.append(_pct(pc.rate) if pc is not None else "–")
            body.append(r)
        doc.table(header, body)


def _method_section(doc: _Doc, map_method: str) -> None:
    doc.heading(2, "Method")
    mapping = ("t-SNE (PCA initialisation; perplexity 30 by default, clamped for few users)"
               if map_method.lower().replace("-", "") == "tsne" else map_method)
    doc.bullets([
        "Intent embedding Z, attention and intent probabilities are read at the prediction of each user's last "
        "interaction from the events before it (PAPER §6.7, §10 row 20).",
        "Z is standardised per dimension, clustered with K-means++ (n_init restarts, best inertia kept) and "
        f"mapped to 2-D with {mapping}; silhouette scores use at most 5,000 sampled users.",
        "Primary intent = the head with the largest attention weight (PAPER §4.5).",
        "Shifts use a second read-out at each session start after a user's first (the latest sessions per user).",
        "Alignment compares each head's prediction with the actual label of the predicted (next) interaction.",
    ])


# ------------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------------


def analysis_summary(
    *,
    run_info: Mapping[str, Any],
    clusters: ClusterResult | None,
    profiles: Sequence[ClusterProfile] | None,
    primary: PrimaryIntents | None,
    shifts: ShiftSummary | None,
    alignment: AlignmentTable,
) -> dict[str, Any]:
    """The JSON-safe document of every analysis (e.g. for ``analysis.json``); None where not computed."""
    return {
        "run": {str(k): v for k, v in run_info.items()},
        "clusters": clusters.to_json() if clusters is not None else None,
        "profiles": [p.to_json() for p in profiles] if profiles else None,
        "primary_intents": primary.to_json() if primary is not None else None,
        "shifts": shifts.to_json() if shifts is not None else None,
        "alignment": alignment.to_json(),
    }


def write_analysis_report(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    run_info: Mapping[str, Any],
    clusters: ClusterResult | None,
    embedding_2d: np.ndarray | None,
    profiles: Sequence[ClusterProfile] | None,
    primary: PrimaryIntents | None,
    shifts: ShiftSummary | None,
    alignment: AlignmentTable,
    map_method: str = "t-SNE",
) -> dict[str, Path]:
    """Draw the plots and write ``report.md`` and a self-contained ``report.html`` under ``out_dir``.

    Plots (``out_dir/plots/*.png``, drawn only when their input is given): ``cluster_map`` (2-D map coloured by
    cluster, centres marked), ``silhouette`` (score vs K, configured K marked), ``cluster_sizes``,
    ``attention_by_cluster`` (mean attention, cluster × head), ``primary_intents`` (primary-intent shares and mean
    attention), ``primary_by_session`` (primary intent by session start counted from the latest, stacked),
    ``transitions`` (from → to heat-map), ``alignment`` (top-1 / top-3 / chance per head) and
    ``alignment_by_cluster`` (cluster × head heat-map).

    Models without fusion: pass ``clusters``, ``embedding_2d``, ``profiles``, ``primary`` and ``shifts`` as None
    for an alignment-only report with a note explaining why.

    Args:
        out_dir: output folder (created if missing).
        title: report title.
        run_info: free-form settings shown in the Run table (model, dataset, targets used, ...); values are
            formatted with ``str`` (floats with 4 significant digits).
        clusters: the clustering, or None.
        embedding_2d: (T, 2) map coordinates aligned with ``clusters``, or None.
        profiles: cluster profiles (from :func:`~intentrec.analysis.intents.cluster_profiles`), or None.
        primary: primary intents, or None.
        shifts: primary-intent shifts over sessions, or None.
        alignment: intent / next-interaction alignment.
        map_method: the name of the 2-D method shown on the map (``"t-SNE"`` or ``"PCA"``).

    Returns:
        name -> path: ``report_md``, ``report_html`` and one entry per plot (keys as listed above).

    Raises:
        ValueError: ``embedding_2d`` does not have one (x, y) row per clustered user.
        OSError: a file cannot be written.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    xy = None
    if embedding_2d is not None:
        xy = np.asarray(embedding_2d, dtype=np.float64)  # (T, 2)
        if xy.ndim != 2 or xy.shape[1] != 2 or (clusters is not None and xy.shape[0] != clusters.n):
            expected = f"({clusters.n}, 2)" if clusters is not None else "(users, 2)"
            raise ValueError(f"embedding_2d has shape {xy.shape}, expected {expected}")

    plotter = _Plotter(root / PLOTS_DIR)
    if clusters is not None:
        _plot_clusters(plotter, clusters, xy, map_method)
        if profiles and primary is not None:
            _plot_attention(plotter, profiles, primary)
    if primary is not None:
        _plot_primary(plotter, primary)
    if shifts is not None:
        _plot_shifts(plotter, shifts)
    _plot_alignment(plotter, alignment)

    doc = _Doc()
    doc.heading(1, title)
    fused = clusters is not None or primary is not None
    if not fused:
        doc.note(NO_FUSION_NOTE + ". This report shows intent alignment only.")
    _summary(doc, clusters, primary, shifts, alignment, profiles)
    _run_section(doc, run_info, clusters, map_method)
    _clusters_section(doc, clusters, profiles, map_method, fused)
    _primary_section(doc, primary)
    _shifts_section(doc, shifts, fused)
    _alignment_section(doc, alignment)
    _method_section(doc, map_method)

    md_path, html_path = root / REPORT_MD, root / REPORT_HTML
    atomic_write_bytes(md_path, _render_md(doc, plotter.files, root).encode("utf-8"))
    atomic_write_bytes(html_path, _render_html(doc, plotter.files, title).encode("utf-8"))
    return {"report_md": md_path, "report_html": html_path, **plotter.files}

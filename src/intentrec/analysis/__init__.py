"""Intent analytics (PAPER §6.7): model read-outs, K-means++ clusters of intent embeddings, primary intents,
intent/next-interaction alignment, explanations and intent-driven page layout.

scikit-learn (the ``analysis`` extra) is imported only when clustering or the 2-D map runs.
"""

from intentrec.analysis.clusters import (
    ClusterResult,
    cluster_embeddings,
    embed_2d,
    nearest_to_center,
    standardize,
)
from intentrec.analysis.explain import Explanation, IntentView, ItemView, WindowView, explain_readout
from intentrec.analysis.inference import IntentReadout, last_event_targets, read_out, session_start_targets
from intentrec.analysis.intents import (
    AlignmentTable,
    ClusterProfile,
    PrimaryIntents,
    ShiftSummary,
    alignment,
    cluster_profiles,
    intent_shifts,
    primary_intents,
    user_table,
)
from intentrec.analysis.layout import (
    ItemLabels,
    LayoutEvaluation,
    Page,
    PageRow,
    RowSpec,
    build_page,
    evaluate_layouts,
    fixed_row_order,
)
from intentrec.analysis.report import analysis_summary, write_analysis_report

__all__ = [
    "AlignmentTable",
    "ClusterProfile",
    "ClusterResult",
    "Explanation",
    "IntentReadout",
    "IntentView",
    "ItemLabels",
    "ItemView",
    "LayoutEvaluation",
    "Page",
    "PageRow",
    "PrimaryIntents",
    "RowSpec",
    "ShiftSummary",
    "WindowView",
    "alignment",
    "analysis_summary",
    "build_page",
    "cluster_embeddings",
    "cluster_profiles",
    "embed_2d",
    "evaluate_layouts",
    "explain_readout",
    "fixed_row_order",
    "intent_shifts",
    "last_event_targets",
    "nearest_to_center",
    "primary_intents",
    "read_out",
    "session_start_targets",
    "standardize",
    "user_table",
    "write_analysis_report",
]

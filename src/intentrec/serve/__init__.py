"""serve stage: the model bundle, inference on raw events, the HTTP service and ONNX export.

Public API:

* :func:`~intentrec.serve.bundle.load_bundle` / :func:`~intentrec.serve.bundle.write_bundle` — the bundle;
* :class:`~intentrec.serve.predictor.Predictor` — raw events -> items, intents, attention (torch or onnx);
* ``intentrec.serve.http.create_app`` — the FastAPI application (needs the ``serve`` extra);
* ``intentrec.serve.onnx`` — ONNX export and the onnxruntime scorer (needs the ``serve`` extra).
"""

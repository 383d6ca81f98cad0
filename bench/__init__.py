"""Benchmark harness for the image-classification stack (issue 5): `python -m bench`.

Each measured path is a module that also runs alone:
- ``bench.model_alone``   (a) eager ``model(x)`` in a plain process;
- ``bench.torchserve``    (b) the stock ``image_classifier`` handler and (c) ours, through TorchServe;
- ``bench.api``           (d) the full stack through the control API;
- ``bench.stats_seed``    ``/stats`` over 1,000,000 history rows (SQLite and PostgreSQL);
- ``bench.decode_micro``  12 MP decode + resize with and without JPEG draft;
- ``bench.loadgen``       the HTTP load generator (a separate, low-CPU process).
"""

"""Benchmark harness for the image-classification stack: `python -m bench` (`make bench`).

Each measured path is a module that also runs alone:
- ``bench.model_alone``   (a) eager ``model(x)`` in a plain process (channels_last, fp32 or bf16, by batch);
- ``bench.runtimes``      (a) the same weights in ONNX Runtime (fp32) and OpenVINO (bf16), via ``torch.onnx``;
- ``bench.torchserve``    (b) the stock ``image_classifier`` handler and (c) ours, through TorchServe;
- ``bench.api``           (d) the full stack through the control API;
- ``bench.stats_seed``    ``/stats`` over seeded history rows (``bench.history_seed``), SQLite and PostgreSQL;
- ``bench.decode_micro``  12 MP decode + resize with and without JPEG draft;
- ``bench.loadgen``       the HTTP load generator (a separate, low-CPU process).

``bench.steps`` runs them in order (``bench.__main__``); ``bench.runner`` drives the load generator against
one target and reads each process group's CPU time (``bench.process_cpu``, which also pins servers to CPUs).
``bench.checks`` computes the targets, ``bench.tables``, ``bench.report`` and ``bench.plot`` write
the reports, ``bench.machine`` records the CPU, and ``bench.readme`` copies the summary into README.md.
"""

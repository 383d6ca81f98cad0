"""Starting and stopping the project's own processes, shared by the tests, the bench and `make run`.

- ``launcher.torchserve_process``: a private TorchServe on the repository's config.properties
  (``start``, ``wait_ready``, ``stop`` and the ``TorchServe`` handle with its URLs and keys);
- ``launcher.process_group``: stop a process and everything it spawned (its session's process group).
"""

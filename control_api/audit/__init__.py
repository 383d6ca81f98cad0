"""The audit log of admin actions: the ``@audited`` decorator and its helpers, and ``GET /audit``."""

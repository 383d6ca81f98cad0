"""Model management for admins: ``/models``, a safe, audited front to TorchServe's management API."""

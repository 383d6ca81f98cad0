"""Handler, archive builder and TorchServe integration tests."""

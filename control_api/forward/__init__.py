"""/forward: images in, TorchServe's classification out; every request lands in the history."""

"""TorchServe handler, model definitions and archive builder for the image classifier."""

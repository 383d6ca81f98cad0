"""TorchServe: the client (``client``), its keys (``keys``) and what its answers mean to us (``answers``)."""

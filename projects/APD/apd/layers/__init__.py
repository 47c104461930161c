"""Layer-level helpers shared by the models and the launch checks (BatchNorm: :mod:`.batch_norm`)."""

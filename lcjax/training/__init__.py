"""Training: state, steps, loop, optimizers, losses."""

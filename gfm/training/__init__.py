"""Training: objectives, collators and the accelerate / DeepSpeed loop."""

"""The PyTorch side: training config, MLP autoencoders, losses, the training loop, checkpoints, export, evaluation."""

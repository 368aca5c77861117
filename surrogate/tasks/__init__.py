"""What a user fits: inpainting (softmax or piece-wise class models) and spatial GP models."""

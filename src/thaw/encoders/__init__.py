"""Text and attribute encoders: pretrained sentence encoders, a test stand-in, the embedding cache."""

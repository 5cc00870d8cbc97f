"""The pipeline's stages, one control per module."""

"""Generations as real models: Hugging Face folders loaded offline, and the demo genesis."""

from adapters.models.hf import ModelError, load_generation, save_generation, validate_model_dir, weights_hash

__all__ = ["ModelError", "load_generation", "save_generation", "validate_model_dir", "weights_hash"]

"""The built-in engine: Hugging Face transformers (imports torch; load it only through the registry)."""

"""User profiles: prompts from training-period histories, LLM backends, a generation cache, encoders."""

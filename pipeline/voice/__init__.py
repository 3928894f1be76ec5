"""The cloned voice: prompts, take validation, training, synthesis and evaluation."""

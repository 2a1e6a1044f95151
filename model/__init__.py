"""Model-side pieces: tokenizers and chat templates (the trainer arrives with its own issue)."""

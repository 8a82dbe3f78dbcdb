"""Prompt formats: chat messages to token ids, with role markers only from the template."""

"""Reply modes beyond free text: JSON (schema-enforced) and tools (Hermes function calling)."""

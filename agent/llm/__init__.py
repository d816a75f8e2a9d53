"""LLM providers behind one interface: `gemini` (its REST API) and `offline` (extractive)."""

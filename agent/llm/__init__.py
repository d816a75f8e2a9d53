"""LLM providers behind one interface: `gemini` (google-genai) and `offline` (extractive)."""

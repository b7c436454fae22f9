"""LLM-as-judge over an OpenAI-compatible API (LogicKor templates and fusebench's own rubric)."""

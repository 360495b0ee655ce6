"""Inference engines: OpenAI-compatible servers (TGI, vLLM, SGLang, `transformers serve`)."""

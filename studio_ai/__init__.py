"""studio-ai: the AI model layer of Databiomics Studio."""

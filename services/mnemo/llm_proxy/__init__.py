"""The llm-proxy: every model call (chat, embeddings, token counting) behind one gRPC service."""

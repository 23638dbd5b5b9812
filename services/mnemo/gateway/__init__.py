"""The gateway: REST + public gRPC AgentService, tenants and API keys, limits, event streaming."""

"""Thin shared plumbing: settings, logging, telemetry, NATS and gRPC helpers."""

"""The OpenTelemetry exporter: sessions, audits, alerts and summaries as OTLP spans and events."""

"""Operations: request IDs and the access log, log formats, Prometheus metrics, /metrics and /health."""

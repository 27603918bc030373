"""Production traces over OTLP: decoding (`decode`), attribute conventions (`conventions`), prices and prompt
links (`cost`) and the span store (`store`); the service is `llmops.services.traces`."""

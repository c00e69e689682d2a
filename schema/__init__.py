"""The shared vocabulary: normalised events, API bodies, WebSocket frames."""

"""Provider webhooks: requests authenticated by the provider's own mechanism, not an API key."""

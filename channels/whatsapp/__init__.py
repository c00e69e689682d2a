"""WhatsApp Cloud API: webhook parsing and verification, Graph API client, sender, media fetcher."""

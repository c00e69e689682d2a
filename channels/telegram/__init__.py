"""Telegram Bot API: parse Updates, verify webhook secrets, send through python-telegram-bot."""

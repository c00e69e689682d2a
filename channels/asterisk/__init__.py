"""Asterisk Manager Interface: call tracking and the AMI connection."""

"""The admins' command line: talks to central's admin HTTP API with httpx."""

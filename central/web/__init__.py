"""The members' app: a separate HTTPS surface for members (pass, catalogue, loans)."""

"""The hosted services' wire formats, served unchanged for existing clients (CONTRACT.md)."""

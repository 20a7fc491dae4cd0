"""The hosted services' wire formats, served unchanged for existing clients
(docs/compatibility.md)."""

"""The rules applied to the store: each public method is one transaction."""

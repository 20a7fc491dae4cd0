"""HTTP and websocket adapters: parse, authenticate and shape the wire formats; no rules here."""

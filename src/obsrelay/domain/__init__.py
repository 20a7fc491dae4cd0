"""The rules of obsrelay's world, free of I/O: jobs, their states, identities and errors."""

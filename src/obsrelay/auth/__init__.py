"""Who may act: user tokens (OIDC or local), site keys, reservations, and the policy."""

"""Secure transport: TLS contexts (Mozilla profiles), certificate reload, client certificates."""

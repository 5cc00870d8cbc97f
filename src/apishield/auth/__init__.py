"""Authentication: credentials, tokens, keys and the principal they establish."""

"""Generated watchtower.v1 stubs (see clients/python/generate.sh); do not edit."""

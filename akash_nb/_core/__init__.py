"""The settings and connection core: providers, keys and their masking, untrusted text, the package's
exceptions and failure sentences, parameter and request checks, files, and what a client is connected to."""

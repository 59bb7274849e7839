"""Learned enhancer networks, one module each (imported, hence registered, by ``llfer.enhance``)."""

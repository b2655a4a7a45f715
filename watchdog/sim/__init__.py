"""Simulated cluster parts on loopback (fake vLLM, …) for the tests and the ``demo`` command."""

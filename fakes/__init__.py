"""Loopback fakes of Discord and of an OpenAI-compatible model server, shared by tests/ and bench/."""

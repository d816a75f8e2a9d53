"""vaia-agent: a vertical AI agent for platform and SRE runbooks."""

__version__ = "0.1.0"

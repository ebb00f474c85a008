"""callscope: speech analytics for contact-center calls, as an Apache Beam pipeline."""

__version__ = "0.1.0"

__all__ = ["__version__"]

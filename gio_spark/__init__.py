"""gio-spark: Gradient Information Optimization data selection as a Spark job."""
__version__ = "0.4.0"

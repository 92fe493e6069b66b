"""Apache Airflow provider for vendor "flow runs": Habu, Amperity, Activepieces and Tableflow."""

__version__ = "0.1.0"

__all__ = ["__version__"]

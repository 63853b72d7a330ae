"""nsys-doctor: where GPU time goes in an Nsight Systems trace, and what to optimize next."""

__version__ = "0.1.0"

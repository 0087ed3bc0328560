"""Proactivity reward models after ProactiveBench (Lu et al., 2024)."""

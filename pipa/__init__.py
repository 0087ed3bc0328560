"""PIPA atomic criteria and proactivity reward models."""

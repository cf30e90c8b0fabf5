"""cargohold: an S3-compatible object storage server modeled on DigitalOcean Spaces."""

__version__ = "0.1.0"

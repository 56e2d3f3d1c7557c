"""Verified backups and restores: backup sets with manifests, two verification tiers, GFS retention,
off-site copies and safe restores. The CLI (`schedgen backup`, `schedgen restore`) is a thin layer
over these modules; docs/BACKUP.md describes the backup set and the manifest fields.
"""

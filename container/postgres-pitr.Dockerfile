# The compose stack's Postgres with pgBackRest, for point-in-time recovery (backup.pitr, docs/BACKUP.md).
# Built by `schedgen build` (and by a deploy that finds it missing) FROM the configured postgres.image,
# tagged by the content of this file and that image reference (schedgen_ops/runtime/imagebuild.py):
#   docker build --build-arg BASE_IMAGE=postgres:16.4-alpine -f postgres-pitr.Dockerfile .
# It adds the pgbackrest binary and nothing else: no configuration and no secret. pgbackrest.conf is
# mounted read-only from the rendered tree; the repository's cipher pass arrives at run time in the
# environment (PGBACKREST_REPO1_CIPHER_PASS from secrets/pgbackrest.env, mode 0600 on the host).
# Alpine images get Alpine's pgbackrest (apk), Debian ones Debian's (apt-get, 2.45 on bookworm).
ARG BASE_IMAGE=postgres:16.4-alpine
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
LABEL io.schedgen.role="postgres-pgbackrest" \
      io.schedgen.base-image="${BASE_IMAGE}"
USER root
# /var/lib/pgbackrest is the mount point of the compose file's repository volume (no VOLUME here: a plain
# `docker run` leaves no anonymous volume behind). A fresh named volume copies this directory's content
# and owner, so repo/, spool/ and log/ belong to the image's postgres user from the first start.
RUN set -eux; \
    if command -v apk >/dev/null 2>&1; then \
        apk add --no-cache pgbackrest; \
    else \
        export DEBIAN_FRONTEND=noninteractive; \
        apt-get update; \
        apt-get install -y --no-install-recommends pgbackrest; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    pgbackrest version; \
    rm -f /etc/pgbackrest.conf; \
    mkdir -p /etc/pgbackrest /var/lib/pgbackrest/repo /var/lib/pgbackrest/spool /var/lib/pgbackrest/log; \
    chown -R "$(id -u postgres):$(id -g postgres)" /var/lib/pgbackrest; \
    chmod -R 0700 /var/lib/pgbackrest

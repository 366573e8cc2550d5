# imagehook: the static binary of `make build` on an empty base, non-root (65532), /data as the
# working volume. It copies files from the checkout only, so `docker build` / `podman build` need no
# base image and no network: run `make build` first (or `make docker`, which does both).
# `make image` builds the same image, for linux/amd64 and linux/arm64, without any daemon.
FROM scratch
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.source="https://github.com/imagehook/imagehook" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.title="imagehook" \
      org.opencontainers.image.licenses="Apache-2.0"
# passwd and group name the user; /data belongs to it, so a volume mounted there starts writable.
COPY hack/image/rootfs/etc/ /etc/
COPY --chown=65532:65532 hack/image/rootfs/data/ /data/
COPY bin/imagehook /usr/local/bin/imagehook
ENV PATH=/usr/local/bin
USER 65532:65532
WORKDIR /data
VOLUME /data
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/imagehook"]
# The quickstart when no config is mounted; it listens on loopback unless --listen says otherwise.
CMD ["serve", "--data-dir", "/data"]

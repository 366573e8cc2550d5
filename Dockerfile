# syntax=docker/dockerfile:1
# imagehook: a static binary on distroless, non-root, read-only root filesystem friendly.
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/imagehook . && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/imagehook /usr/local/bin/imagehook
# The journal and repository caches live under /var/lib/imagehook: mount a volume there.
COPY --from=build --chown=65534:65534 /out/data /var/lib/imagehook
USER 65534:65534
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/imagehook"]
CMD ["serve", "--config", "/etc/imagehook/imagehook.yaml"]

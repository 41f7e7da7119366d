# Starling in a container: a static Go build on Debian's Go image, run on
# debian:bookworm-slim with ffmpeg (for the HLS bridge) as a non-root user.
#
#   docker build -t starling --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm -p 8080:8080 -p 7881:7881 -p 7882:7882/udp starling
#
# docker-compose.yml runs it with a data volume, keys and a health check.

FROM golang:1.26-bookworm AS build
# go.mod may name a newer patch release than the image has; let go fetch it.
ENV GOTOOLCHAIN=auto CGO_ENABLED=0
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/starling ./cmd/starling

FROM debian:bookworm-slim
# curl is for the health check (GET /healthz).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin starling \
 && mkdir -p /data \
 && chown starling:starling /data
COPY --from=build /out/starling /usr/local/bin/starling
USER starling
WORKDIR /data
ENV STARLING_DATA_DIR=/data
VOLUME ["/data"]
# HTTP (pages, WHIP, WHEP, /metrics, /healthz), ICE-TCP, ICE UDP mux, TURN.
EXPOSE 8080/tcp 7881/tcp 7882/udp 3478/udp 3478/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["starling"]
CMD ["serve"]

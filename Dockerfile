# syntax=docker/dockerfile:1
# meshgate container image. node:24 is the current Active LTS (supported to April 2028); CI runs the
# whole suite on it too. `-slim` (Debian bookworm) keeps glibc for prebuilt modules at ~80 MB compressed.
#
#   docker build -t meshgate .
#   docker run --rm -p 8080:8080 -p 15021:15021 -p 15020:15020 meshgate     # the example ingress
#   docker run --rm -v "$PWD/mesh:/etc/meshgate:ro" -p 8443:8443 meshgate run -c /etc/meshgate
#
# Build stage: compile TypeScript with the dev toolchain (tests and bench are not part of the image).
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY gateway ./gateway
COPY plugins ./plugins
RUN npx tsc -p tsconfig.json

# Runtime stage: production dependencies only (the same `npm ci --omit=dev` .ci/prod-install checks),
# tini as PID 1 (forwards SIGTERM so meshgate drains, reaps zombies), a numeric non-root user so
# Kubernetes' runAsNonRoot can verify it.
FROM node:24-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
# At most two glibc malloc arenas (the default allows 8 per core): fewer arenas keep less freed memory
# after a load. Measured on Node 24 (bench/README.md, "Memory"): sidecars 9-14 MB less RSS after
# 1 000 req/s and once rested, CPU per request unchanged side by side.
ENV MALLOC_ARENA_MAX=2
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/gateway ./dist/gateway
COPY --from=build /src/dist/plugins ./dist/plugins
COPY config ./config
# A home for certificates a container generates (the compose `certs` service): an empty named volume
# mounted here starts owned by the non-root user.
RUN mkdir -p /var/lib/meshgate && chown 1000:1000 /var/lib/meshgate
# uid/gid 1000 is the image's `node` user. /app stays root-owned and read-only to it: `meshgate demo`
# writes its certificates and logs to $TMPDIR (or --dir), which works with a read-only root filesystem
# plus a writable /tmp.
USER 1000:1000
# 8080: the example Gateway's HTTP server. 15021: status (/healthz/ready). 15020: metrics (/stats/prometheus).
# The admin API (127.0.0.1:15000) is loopback-only on purpose and not exposed. Publish the ports your own
# Gateway servers declare (e.g. 8443) with `-p`.
EXPOSE 8080 15021 15020
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:15021/healthz/ready').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/gateway/cli/main.js"]
CMD ["run", "-c", "/app/config/examples/docker-ingress.yaml"]

# syntax=docker/dockerfile:1
# Build stage: compile TypeScript with the dev toolchain.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY gateway ./gateway
COPY plugins ./plugins
COPY examples ./examples
COPY test ./test
COPY bench ./bench
RUN npx tsc -p tsconfig.json

# Runtime stage: production dependencies only, non-root, the binary as entrypoint.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/gateway ./dist/gateway
COPY --from=build /app/dist/plugins ./dist/plugins
COPY config ./config
USER node
# 8080 HTTP / 8443 HTTPS (Gateway servers), 15006 sidecar inbound, 15001 sidecar outbound, 15000 admin.
EXPOSE 8080 8443 15006 15001 15000
ENTRYPOINT ["node", "/app/dist/gateway/cli/main.js"]
CMD ["run", "-c", "/app/config/examples"]

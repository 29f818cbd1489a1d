# syntax=docker/dockerfile:1
# Build: compiles ssh2's native crypto binding (and the other native modules) and the TypeScript.
# Node 22 LTS (Node 20 reached end of life in April 2026)
FROM node:22-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# the native addon (package "rrsyncd-native", a file: dependency) is built by npm ci
COPY native ./native
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm ci && npm prune --omit=dev \
 && node -e "if(!require('ssh2/lib/protocol/crypto.js').bindingAvailable){console.error('ssh2 native crypto binding missing');process.exit(1)}"

FROM node:22-bookworm-slim
# a pinned uid/gid, so volume ownership survives rebuilds
RUN groupadd --system --gid 10022 rrsyncd && useradd --system --uid 10022 --gid rrsyncd --home-dir /var/lib/rrsyncd --shell /usr/sbin/nologin rrsyncd \
 && mkdir -p /data /var/lib/rrsyncd /etc/rrsyncd && chown rrsyncd:rrsyncd /data /var/lib/rrsyncd && chmod 0700 /var/lib/rrsyncd
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/native ./native
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY package.json README.md ./
COPY etc ./etc
USER rrsyncd
ENV RRSYNCD_STATE_DIR=/var/lib/rrsyncd \
    RRSYNCD_ROOT=/data \
    RRSYNCD_LISTEN=0.0.0.0:2222 \
    RRSYNCD_AUTHORIZED_KEYS=/etc/rrsyncd/authorized_keys \
    RRSYNCD_METRICS_LISTEN=0.0.0.0:9122
VOLUME ["/data", "/var/lib/rrsyncd"]
EXPOSE 2222 9122
# SIGTERM drains: running transfers get limits.shutdownGraceMs (30 s); give `docker stop` longer (-t 45)
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9122/readyz').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "--max-semi-space-size=4", "--initial-old-space-size=48", "/app/bin/rrsyncd.js"]
CMD ["serve"]

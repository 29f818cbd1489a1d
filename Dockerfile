# syntax=docker/dockerfile:1
# Build: compiles ssh2's native crypto binding (and the other native modules) and the TypeScript.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# the native addon (package "rrsyncd-native", a file: dependency) is built by npm ci
COPY native ./native
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm ci && npm prune --omit=dev \
 && node -e "if(!require('ssh2/lib/protocol/crypto.js').bindingAvailable){console.error('ssh2 native crypto binding missing');process.exit(1)}"

FROM node:20-bookworm-slim
RUN groupadd --system rrsyncd && useradd --system --gid rrsyncd --home-dir /var/lib/rrsyncd --shell /usr/sbin/nologin rrsyncd \
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
    RRSYNCD_AUTHORIZED_KEYS=/etc/rrsyncd/authorized_keys
VOLUME ["/data", "/var/lib/rrsyncd"]
EXPOSE 2222
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--max-semi-space-size=4", "--initial-old-space-size=48", "/app/bin/rrsyncd.js"]
CMD ["serve"]

# The shardline image: one image whose entrypoint is the `shardline` command (router, shard, cluster,
# plan, ...). node:24-slim, production dependencies only, non-root. test/helm/image.test.ts checks it.
#
#   docker build -t shardline:0.1.0 .
#   docker run --rm shardline:0.1.0 version
#   docker run --rm -p 6380:6380 shardline:0.1.0 shard --host 0.0.0.0 --max-memory 256mb

# Stage 1: production dependencies from the lockfile (no dev tools, no install scripts: none are needed).
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# Stage 2: the runtime. Node strips the TypeScript types itself (no build step), and refuses to do so
# under node_modules, so the repository's own files live in /app, next to their dependencies.
FROM node:24-slim
ENV NODE_ENV=production \
    SHARDLINE_LOG_FORMAT=json
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY cli ./cli
COPY client ./client
COPY common ./common
COPY rebalance ./rebalance
COPY router ./router
COPY shard ./shard
COPY config ./config
# Root owns the files; the processes run as the image's `node` user (uid 1000), numeric so that
# Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# router data and admin; shard RESP and admin (the chart's and the commands' defaults)
EXPOSE 8080 9090 6380 9380
ENTRYPOINT ["node", "/app/cli/shardline.ts"]
CMD ["--help"]

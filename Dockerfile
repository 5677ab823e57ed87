# syntax=docker/dockerfile:1
# One image for every process of ghl-ingest (worker, intake, CLI, stand-in); compose picks the command.
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build stage.
#
# The install cannot go stale when a package is added: `pnpm fetch` needs the lockfile only, then
# the whole build context (what .dockerignore leaves: no tests, benchmarks or chaos suite) is
# installed offline with production dependencies only. `pnpm check:image` replays this file
# without a Docker engine and runs the result (CI does, on every change).
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t ghl-ingest:0.1.0 .

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /app
RUN npm install --global --no-audit --no-fund pnpm@10.34.8
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch --prod
COPY . .
# `--prod` still installs TypeScript (23 MB): valibot, under bull-board, names it as an optional
# peer, the workspace root's devDependency satisfies that peer in the lockfile, and pnpm then
# treats it as a production package (pnpm/pnpm#15344). valibot needs it for types only, never at
# run time, so it is removed here: the package and every link to it.
RUN pnpm install --offline --frozen-lockfile --prod \
 && rm -rf node_modules/.pnpm/typescript@* \
 && find node_modules/.pnpm -maxdepth 3 -path '*/node_modules/typescript' -type l -delete

FROM node:24.22.3-bookworm-slim
# tini as PID 1: it passes SIGTERM and SIGINT on to Node and reaps orphans, as `docker run --init`
# would, so the image behaves the same under any runtime. Debian's package, from the base's release.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# Owned by root, so the processes (the node user) can read the application but not change it.
COPY --from=build /app ./
USER node
ENTRYPOINT ["/usr/bin/tini", "--"]
# As `pnpm worker` runs it (package.json): a bounded heap, so garbage is collected before RSS grows.
CMD ["node", "--max-old-space-size=192", "--max-semi-space-size=16", "apps/worker/src/main.ts"]

# Last, so that a new revision rebuilds no layer. `pnpm check:image` holds these to package.json
# and LICENSE: the version is apps/cli's (the `ghl-ingest` package), as compose's image tag is.
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ghl-ingest" \
      org.opencontainers.image.description="Queue-backed, rate-limited, idempotent delivery of conversation history into HighLevel" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://github.com/ghl-ingest/ghl-ingest" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${REVISION}"

# syntax=docker/dockerfile:1
# One image for every process of ghl-ingest (worker, intake, CLI, stand-in); compose picks the command.
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build stage.
#
# The install cannot go stale when a package is added: `pnpm fetch` needs the lockfile only, then
# the whole build context (what .dockerignore leaves: no tests, benchmarks or chaos suite) is
# installed offline with production dependencies only. `pnpm check:image` replays this file
# without a Docker engine and runs the result (CI does, on every change).

FROM node:24.11.1-bookworm-slim AS build
WORKDIR /app
RUN npm install --global --no-audit --no-fund pnpm@10.34.8
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch --prod
COPY . .
RUN pnpm install --offline --frozen-lockfile --prod

FROM node:24.11.1-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app ./
USER node
# As `pnpm worker` runs it (package.json): a bounded heap, so garbage is collected before RSS grows.
CMD ["node", "--max-old-space-size=192", "--max-semi-space-size=16", "apps/worker/src/main.ts"]

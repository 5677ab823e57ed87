# syntax=docker/dockerfile:1
# One image for every process of ghl-ingest (worker, intake, stand-in); compose picks the command.
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build stage:
# the first stage installs production dependencies only, the second runs as the non-root user.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
RUN npm install --global --no-audit --no-fund pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY apps/producer/package.json apps/producer/
COPY apps/worker/package.json apps/worker/
COPY packages/schema/package.json packages/schema/
COPY packages/fake-api/package.json packages/fake-api/
COPY packages/testing/package.json packages/testing/
RUN pnpm install --frozen-lockfile --prod

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps --chown=node:node /app ./
COPY --chown=node:node . .
USER node
# As `pnpm worker` runs it (package.json): a bounded heap, so garbage is collected before RSS grows.
CMD ["node", "--max-old-space-size=192", "--max-semi-space-size=16", "apps/worker/src/main.ts"]

/** What a worker does and its main settings: `pnpm worker --help` and `ghl-ingest worker --help`. */
export const WORKER_HELP = `Takes messages from the queue and posts them to HighLevel, each location within its
rate budget, until SIGINT or SIGTERM (a second signal exits at once). Run several for more
throughput, on one host or many. Settings come from the environment (and .env), among them:

  REDIS_URL            redis://127.0.0.1:6379
  QUEUE_PREFIX         ghl
  GHL_API_BASE_URL     https://services.leadconnectorhq.com
  GHL_TOKEN            one token for every location
  GHL_TOKENS_FILE      JSON {"<locationId>": "<token>"} (SIGHUP reloads it)
  GHL_ATTACHMENT_HEADERS_FILE  JSON {"<host>": {"<Header>": "<value>"}}: attachment links of
                       those hosts are fetched with those headers and uploaded to HighLevel
  GHL_CLIENT_ID, GHL_CLIENT_SECRET, GHL_TOKEN_KEY
                       a marketplace app: OAuth tokens from \`ingest auth import\`, refreshed here
  WORKER_CONCURRENCY   in-flight requests (default: chosen by the worker)
  ADMIN_PORT           /metrics, /healthz, /readyz, dashboard (default 9464, else the next free port)
  NOTIFY_WEBHOOK_URL   POSTs locations paused or parked and new dead letters there, batched
                       and retried; NOTIFY_WEBHOOK_SECRET signs them (HMAC-SHA256)
  LOG_LEVEL            info

Every setting and its default: the README and .env.example.
`;

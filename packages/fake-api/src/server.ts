/**
 * A local HighLevel for the demo, the tests and the benchmarks: `POST /conversations/messages/inbound`
 * with HighLevel's auth, headers, validation, rate limits and failure modes; the contact,
 * conversation and upload calls a message may need first (content-routes.ts), sharing the inbound
 * post's rate window; its OAuth endpoints (oauth.ts); plus an admin API (`/__admin/...`) to read
 * what it received and to change its behaviour while it runs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { canonicalJson } from '@ghl-ingest/schema';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ContentApi, type ContentStats } from './content-routes.ts';
import { Conversations } from './conversations.ts';
import { FakeOAuth, type OAuthOwner, type OAuthStats } from './oauth.ts';
import { applyPatch, DEFAULT_CONFIG, type ConfigPatch, type FakeHighLevelConfig, type FaultRoute } from './options.ts';
import { RateWindow, type RateLimits } from './rate-window.ts';
import { validateInbound } from './validate.ts';

export const INBOUND_PATH = '/conversations/messages/inbound';
export const API_VERSION = '2021-04-15';

export interface ReceivedMessage {
  /** Order of acceptance, from 1. */
  seq: number;
  locationId: string;
  messageId: string;
  altId?: string;
  type: string;
  /** Wall-clock ms when the request arrived. */
  receivedAt: number;
  /** Monotonic ms when the request arrived (what the rate window counts on). */
  t: number;
  bodyHash: string;
  body?: Record<string, unknown>;
}

export interface FakeStats extends ContentStats {
  requests: number;
  /** Requests by route (`inbound`, `upsert`, `conversation`, `upload`, `read`), whatever their answer. */
  requestsByRoute: Partial<Record<FaultRoute, number>>;
  /** Requests each location's rate window let through, every route: what its budget was spent on. */
  admittedByLocation: Record<string, number>;
  byStatus: Record<string, number>;
  accepted: number;
  acceptedByLocation: Record<string, number>;
  rateLimited: number;
  rateLimitedByLocation: Record<string, number>;
  unauthorized: number;
  dropped: number;
  /** Accepted messages whose (location, altId) had been accepted before. */
  duplicateAltIds: number;
  /** Accepted messages whose (location, body) had been accepted before. */
  duplicateBodies: number;
  /**
   * Accepted messages whose answer never reached the client: the connection was reset on purpose
   * (`dropAfterAccept`) or the client had gone (timed out, killed). Each may be posted again.
   */
  acceptedUnanswered: number;
  /** OAuth: refreshes, reuse of spent refresh tokens, lost refresh answers, expired access tokens. */
  oauth: OAuthStats;
  /** Reads: `GET /conversations/{id}/messages` and `GET /conversations/search` answered. */
  reads: number;
}

export interface FakeHighLevelOptions extends ConfigPatch {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Monotonic clock in ms. Default `performance.now()`. */
  now?: () => number;
  /** Which day a wall-clock time belongs to, for the daily cap. Default: the UTC date. */
  dayOf?: (epochMs: number) => string;
  /** Randomness in [0, 1). Default `Math.random`. */
  random?: () => number;
}

export class FakeHighLevel {
  #url = '';
  #app: FastifyInstance;
  #config: FakeHighLevelConfig;
  #windows = new Map<string, RateWindow>();
  #messages: ReceivedMessage[] = [];
  #seenAltIds = new Set<string>();
  #seenBodies = new Set<string>();
  #stats: Omit<FakeStats, 'oauth' | keyof ContentStats> = emptyStats();
  #outage: { until: number; status: number } | null = null;
  #oauthOutage: { until: number; status: number } | null = null;
  #now: () => number;
  #dayOf: (epochMs: number) => string;
  #random: () => number;
  readonly #oauth: FakeOAuth;
  readonly #conversations: Conversations;
  readonly #content: ContentApi;

  private constructor(app: FastifyInstance, config: FakeHighLevelConfig, options: FakeHighLevelOptions) {
    this.#app = app;
    this.#config = config;
    this.#oauth = new FakeOAuth(config.oauth);
    this.#now = options.now ?? (() => performance.now());
    this.#dayOf = options.dayOf ?? ((ms) => new Date(ms).toISOString().slice(0, 10));
    this.#random = options.random ?? Math.random;
    this.#conversations = new Conversations(this.#now);
    this.#content = new ContentApi(
      {
        admit: (request, reply, route, version) => this.#admit(request, reply, route, version),
        answer: (reply, status, body) => this.#answer(reply, status, body),
        dropAfterAccept: (reply, route) => {
          if (!this.#faulty(route) || !this.#chance(this.#config.faults.dropAfterAccept)) return false;
          this.#stats.acceptedUnanswered += 1;
          this.#drop(reply);
          return true;
        },
        config: () => this.#config,
        url: () => this.#url,
        now: () => this.#now(),
        newId: () => randomId(20),
      },
      this.#conversations,
    );
  }

  static async start(options: FakeHighLevelOptions = {}): Promise<FakeHighLevel> {
    const app = Fastify({ logger: false, bodyLimit: 5 * 1024 * 1024, keepAliveTimeout: 30_000 });
    const fake = new FakeHighLevel(app, applyPatch(DEFAULT_CONFIG, options), options);
    // A file past the size limit is cut and flagged (uploads.ts answers 413), never thrown mid-form.
    await app.register(multipart, { throwFileSizeLimit: false });
    app.setErrorHandler((error: { statusCode?: number; message: string }, _request, reply) => {
      const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
      void reply.code(status).send({ statusCode: status, message: error.message, error: status === 500 ? 'Internal Server Error' : 'Bad Request' });
    });
    app.post(INBOUND_PATH, (request, reply) => fake.#inbound(request, reply));
    fake.#content.register(app);
    app.get('/conversations/search', (request, reply) =>
      fake.#read(request, reply, (locationId) => {
        const q = request.query as Record<string, string | undefined>;
        if (q.locationId !== locationId) return { status: 403, body: { statusCode: 403, message: 'The token does not have access to this location' } };
        if (q.contactId === undefined) return { status: 422, body: { statusCode: 422, message: ['contactId should not be empty'] } };
        return { status: 200, body: fake.#conversations.search(locationId, q.contactId, fake.#config.searchLagMs) };
      }),
    );
    app.get('/conversations/:conversationId/messages', (request, reply) =>
      fake.#read(request, reply, (locationId) => {
        const q = request.query as Record<string, string | undefined>;
        const limit = Math.min(100, Math.max(1, Number(q.limit ?? 20) || 20));
        const page = fake.#conversations.page(
          locationId,
          (request.params as { conversationId: string }).conversationId,
          limit,
          q.lastMessageId,
          fake.#config.reads.altId,
        );
        return page === undefined ? { status: 404, body: { statusCode: 404, message: 'Conversation not found' } } : { status: 200, body: page };
      }),
    );
    // HighLevel's OAuth endpoints take form-encoded bodies.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    app.post('/oauth/token', (request, reply) => {
      if (fake.#oauthDown()) return fake.#answer(reply, fake.#oauthOutage?.status ?? 503, { statusCode: 503, message: 'Service Unavailable' });
      const answer = fake.#oauth.token(request.body as Record<string, string>);
      if (answer.refreshed === true) void reply.raw.once('close', () => (reply.raw.writableFinished ? undefined : fake.#oauth.answerLost()));
      return fake.#answer(reply, answer.status, answer.body);
    });
    app.post('/oauth/locationToken', (request, reply) => {
      if (fake.#oauthDown()) return fake.#answer(reply, fake.#oauthOutage?.status ?? 503, { statusCode: 503, message: 'Service Unavailable' });
      const auth = request.headers.authorization;
      const answer = fake.#oauth.locationToken(auth?.startsWith('Bearer ') === true ? auth.slice(7).trim() : undefined, request.body as Record<string, string>);
      return fake.#answer(reply, answer.status, answer.body);
    });
    app.post('/__admin/oauth/authorise', (request) => fake.oauth.authorise(request.body as OAuthOwner));
    app.post('/__admin/oauth/codes', (request) => {
      const { code, ...owner } = request.body as { code: string } & OAuthOwner;
      fake.oauth.addCode(code, owner);
      return { ok: true };
    });
    app.post('/__admin/oauth/install', (request) => {
      const { companyId, locationIds } = request.body as { companyId: string; locationIds: string[] };
      fake.oauth.install(companyId, locationIds);
      return { ok: true };
    });
    app.get('/__admin/oauth/issued', () => fake.oauth.issued());
    app.get('/__admin/webhooks/public-key', (_request, reply) => reply.type('text/plain').send(fake.oauth.webhookPublicKey));
    // Sends a marketplace webhook (INSTALL, UNINSTALL...) to an app, signed as HighLevel signs them.
    app.post('/__admin/webhooks/send', async (request) => {
      const { url, event } = request.body as { url: string; event: Record<string, unknown> };
      const body = JSON.stringify(event);
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-ghl-signature': fake.oauth.signWebhook(body) }, body });
      return { status: res.status, body: await res.text() };
    });
    app.post('/__admin/oauth/revoke', (request) => {
      fake.oauth.revoke(request.body as OAuthOwner);
      return { ok: true };
    });
    app.get('/__admin/stats', () => fake.stats());
    app.get('/__admin/messages', (request) => {
      const q = request.query as Record<string, string | undefined>;
      return fake.messages({
        locationId: q.locationId,
        offset: q.offset === undefined ? 0 : Number(q.offset),
        limit: q.limit === undefined ? 10_000 : Number(q.limit),
      });
    });
    app.get('/__admin/config', () => fake.config);
    app.patch('/__admin/config', (request) => fake.configure(request.body as ConfigPatch));
    app.post('/__admin/outage', (request) => {
      const { ms, status } = request.body as { ms: number; status?: number };
      fake.outage(ms, status);
      return { ok: true };
    });
    app.post('/__admin/oauth/outage', (request) => {
      const { ms, status } = request.body as { ms: number; status?: number };
      fake.oauthOutage(ms, status);
      return { ok: true };
    });
    app.post('/__admin/spend', (request) => {
      const { locationId, count } = request.body as { locationId: string; count: number };
      return { spent: fake.spend(locationId, count) };
    });
    app.post('/__admin/reset', () => {
      fake.reset();
      return { ok: true };
    });
    await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : options.port;
    fake.#url = `http://${options.host ?? '127.0.0.1'}:${String(port)}`;
    return fake;
  }

  /** Where it listens, e.g. `http://127.0.0.1:41234`: what `GHL_API_BASE_URL` points at. */
  get url(): string {
    return this.#url;
  }

  get config(): FakeHighLevelConfig {
    return structuredClone(this.#config);
  }

  configure(patch: ConfigPatch): FakeHighLevelConfig {
    this.#config = applyPatch(this.#config, patch);
    this.#oauth.settings = this.#config.oauth;
    return this.config;
  }

  /** The OAuth side: authorise owners, add install codes, install or revoke (see oauth.ts). */
  get oauth(): FakeOAuth {
    return this.#oauth;
  }

  /** Answers `status` (default 503) to every inbound request for the next `ms` milliseconds. */
  outage(ms: number, status = 503): void {
    this.#outage = { until: this.#now() + ms, status };
  }

  /** Answers `status` (default 503) to every OAuth request (/oauth/token, /oauth/locationToken) for the next `ms`. */
  oauthOutage(ms: number, status = 503): void {
    this.#oauthOutage = { until: this.#now() + ms, status };
  }

  #oauthDown(): boolean {
    return this.#oauthOutage !== null && this.#now() < this.#oauthOutage.until;
  }

  /** Another client of the same location spends `count` of its budget; returns how many it could. */
  spend(locationId: string, count: number): number {
    let spent = 0;
    for (let i = 0; i < count; i += 1) {
      if (!this.#window(locationId).take(this.#now(), this.#dayOf(Date.now()), this.#limitsFor(locationId)).allowed) break;
      spent += 1;
    }
    return spent;
  }

  stats(): FakeStats {
    return { ...structuredClone(this.#stats), ...this.#content.stats(), oauth: this.#oauth.stats() };
  }

  /** The contacts upserts made (a location's, or all), in creation order. */
  contacts(locationId?: string): ReturnType<ContentApi['contacts']['list']> {
    return this.#content.contacts.list(locationId);
  }

  /** Every file uploaded, with its owner, size, hash and times. */
  uploads(): ReturnType<ContentApi['uploads']['list']> {
    return this.#content.uploads.list();
  }

  /** Conversations (a location's, or all): created by `POST /conversations/` or by a first inbound message. */
  conversations(locationId?: string): ReturnType<Conversations['list']> {
    return this.#conversations.list(locationId);
  }

  /** The location a request's bearer token stands for: an OAuth access token first (it expires), then the configured tokens. */
  #locationOf(request: FastifyRequest): string | undefined {
    const auth = request.headers.authorization;
    const token = auth?.startsWith('Bearer ') === true ? auth.slice(7).trim() : undefined;
    if (token === undefined || token === '') return undefined;
    const oauth = this.#oauth.locationOf(token);
    if (oauth === 'expired') return undefined;
    return oauth?.locationId ?? (this.#config.tokens === null ? token : this.#config.tokens[token]);
  }

  /** A read: the token's location, the same rate budget as posts, the read scope; then `answer`. */
  async #read(request: FastifyRequest, reply: FastifyReply, answer: (locationId: string) => { status: number; body: unknown }): Promise<unknown> {
    const locationId = await this.#admit(request, reply, 'read', undefined);
    if (locationId === undefined) return reply;
    this.#stats.reads += 1;
    const { status, body } = answer(locationId);
    return this.#answer(reply, status, body);
  }

  /**
   * What every request of HighLevel's passes before its route does anything: the token's location
   * (401), for reads their scope (401), the location's one rate window with its headers (429), the
   * answer's latency, the `Version` header when the route needs one (400), and where `faultRoutes`
   * says so, the outage and the faults that strike before anything is recorded. Returns the
   * location, or undefined once it has answered.
   */
  async #admit(request: FastifyRequest, reply: FastifyReply, route: FaultRoute, version: string | undefined): Promise<string | undefined> {
    const t = this.#now();
    const stats = this.#stats;
    stats.requests += 1;
    stats.requestsByRoute[route] = (stats.requestsByRoute[route] ?? 0) + 1;
    const locationId = this.#locationOf(request);
    if (locationId === undefined) {
      stats.unauthorized += 1;
      this.#answer(reply, 401, { statusCode: 401, message: 'Invalid JWT' });
      return undefined;
    }
    if (route === 'read' && !this.#config.reads.scope) {
      this.#answer(reply, 401, { statusCode: 401, message: 'The token is not authorized for this scope.' });
      return undefined;
    }
    const limits = this.#limitsFor(locationId);
    const rate = this.#window(locationId).take(t, this.#dayOf(Date.now()), limits);
    void reply.headers({
      'x-ratelimit-limit-daily': String(limits.daily),
      'x-ratelimit-daily-remaining': String(rate.dailyRemaining),
      'x-ratelimit-interval-milliseconds': String(limits.windowMs),
      'x-ratelimit-max': String(limits.max),
      'x-ratelimit-remaining': String(rate.remaining),
    });
    if (!rate.allowed) {
      stats.rateLimited += 1;
      stats.rateLimitedByLocation[locationId] = (stats.rateLimitedByLocation[locationId] ?? 0) + 1;
      if (this.#config.retryAfter) void reply.header('retry-after', String(Math.max(1, Math.ceil(rate.retryInMs / 1000))));
      this.#answer(reply, 429, { statusCode: 429, message: 'Too Many Requests' });
      return undefined;
    }
    stats.admittedByLocation[locationId] = (stats.admittedByLocation[locationId] ?? 0) + 1;
    await this.#delay();
    if (version !== undefined && request.headers.version !== version) {
      this.#answer(reply, 400, { statusCode: 400, message: `Version header must be ${version}` });
      return undefined;
    }
    if (!this.#faulty(route)) return locationId;
    if (this.#outage !== null && t < this.#outage.until) {
      this.#answer(reply, this.#outage.status, { statusCode: this.#outage.status, message: 'Service Unavailable' });
      return undefined;
    }
    const { faults } = this.#config;
    if (this.#chance(faults.drop)) {
      this.#drop(reply);
      return undefined;
    }
    for (const [status, p] of [
      [500, faults.status500],
      [502, faults.status502],
      [503, faults.status503],
    ] as const) {
      if (this.#chance(p)) {
        this.#answer(reply, status, { statusCode: status, message: 'Internal server error' });
        return undefined;
      }
    }
    return locationId;
  }

  /** Whether the faults and the outage strike this route. */
  #faulty(route: FaultRoute): boolean {
    return this.#config.faultRoutes.includes(route);
  }

  messages(filter: { locationId?: string | undefined; offset?: number; limit?: number } = {}): ReceivedMessage[] {
    const all = filter.locationId === undefined ? this.#messages : this.#messages.filter((m) => m.locationId === filter.locationId);
    const offset = filter.offset ?? 0;
    return all.slice(offset, offset + (filter.limit ?? all.length));
  }

  reset(): void {
    this.#windows.clear();
    this.#messages = [];
    this.#seenAltIds.clear();
    this.#seenBodies.clear();
    this.#stats = emptyStats();
    this.#oauth.reset();
    this.#conversations.clear();
    this.#content.reset();
    this.#outage = null;
    this.#oauthOutage = null;
  }

  async close(): Promise<void> {
    await this.#app.close();
  }

  #window(locationId: string): RateWindow {
    let w = this.#windows.get(locationId);
    if (w === undefined) {
      w = new RateWindow();
      this.#windows.set(locationId, w);
    }
    return w;
  }

  #limitsFor(locationId: string): RateLimits {
    return { ...this.#config.limits, ...this.#config.perLocation[locationId] };
  }

  async #inbound(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const t = this.#now();
    const receivedAt = Date.now();
    const stats = this.#stats;
    const config = this.#config;
    const locationId = await this.#admit(request, reply, 'inbound', API_VERSION);
    if (locationId === undefined) return reply;
    const { faults } = config;
    if (this.#chance(faults.empty201)) {
      stats.byStatus['201'] = (stats.byStatus['201'] ?? 0) + 1;
      return reply.code(201).send('');
    }

    const verdict = validateInbound(request.body, {
      ...(config.providers === null ? {} : { providers: new Set(config.providers) }),
      ...(config.maxMessageChars === null ? {} : { maxMessageChars: config.maxMessageChars }),
    });
    if (!verdict.ok) {
      return this.#answer(reply, verdict.status, {
        statusCode: verdict.status,
        message: verdict.message,
        error: verdict.status === 422 ? 'Unprocessable Entity' : 'Bad Request',
      });
    }
    const body = request.body as Record<string, unknown>;
    const messageId = randomId(20);
    const bodyKey = `${locationId}\n${canonicalJson(body)}`;
    const bodyHash = createHash('sha256').update(bodyKey).digest('base64url');
    const altId = typeof body.altId === 'string' ? body.altId : undefined;
    if (altId !== undefined) {
      const altKey = `${locationId}\n${altId}`;
      if (this.#seenAltIds.has(altKey)) stats.duplicateAltIds += 1;
      else this.#seenAltIds.add(altKey);
    }
    if (this.#seenBodies.has(bodyHash)) stats.duplicateBodies += 1;
    else this.#seenBodies.add(bodyHash);
    const record: ReceivedMessage = { seq: this.#messages.length + 1, locationId, messageId, type: String(body.type), receivedAt, t, bodyHash };
    if (altId !== undefined) record.altId = altId;
    if (config.recordBodies) record.body = body;
    this.#messages.push(record);
    stats.accepted += 1;
    stats.acceptedByLocation[locationId] = (stats.acceptedByLocation[locationId] ?? 0) + 1;

    const conversationId = this.#conversations.record(locationId, body, messageId, new Date(receivedAt).toISOString());
    this.#content.notePosted(body);
    if (this.#chance(faults.dropAfterAccept)) {
      stats.acceptedUnanswered += 1;
      return this.#drop(reply);
    }
    if (this.#chance(faults.slowAfterAccept)) await sleep(faults.slowAfterAcceptMs);
    if (request.raw.socket.destroyed) stats.acceptedUnanswered += 1;
    return this.#answer(reply, 201, {
      success: true,
      conversationId,
      messageId,
      message: 'Message added',
      ...(typeof body.contactId === 'string' ? { contactId: body.contactId } : {}),
      dateAdded: new Date(receivedAt).toISOString(),
    });
  }

  #answer(reply: FastifyReply, status: number, body: unknown): FastifyReply {
    this.#stats.byStatus[String(status)] = (this.#stats.byStatus[String(status)] ?? 0) + 1;
    return reply.code(status).send(body);
  }

  #drop(reply: FastifyReply): FastifyReply {
    this.#stats.dropped += 1;
    reply.hijack();
    reply.raw.socket?.destroy();
    return reply;
  }

  #chance(p: number): boolean {
    return p > 0 && this.#random() < p;
  }

  async #delay(): Promise<void> {
    const { minMs, maxMs, slowProbability, slowMs } = this.#config.latency;
    const ms = this.#chance(slowProbability) ? slowMs : minMs + (maxMs - minMs) * this.#random();
    if (ms > 0) await sleep(ms);
  }
}

function emptyStats(): Omit<FakeStats, 'oauth' | keyof ContentStats> {
  return {
    requests: 0,
    requestsByRoute: {},
    admittedByLocation: {},
    byStatus: {},
    accepted: 0,
    acceptedByLocation: {},
    rateLimited: 0,
    rateLimitedByLocation: {},
    unauthorized: 0,
    dropped: 0,
    duplicateAltIds: 0,
    duplicateBodies: 0,
    acceptedUnanswered: 0,
    reads: 0,
  };
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** An id shaped like HighLevel's (20 alphanumerics). */
function randomId(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += ID_ALPHABET.charAt(b % ID_ALPHABET.length);
  return out;
}

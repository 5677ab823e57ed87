/**
 * What HighLevel's marketplace tells an app about its installs, as the intake receives it:
 * - the install redirect, `GET /oauth/callback?code=...`: the code is exchanged at
 *   `POST /oauth/token` (`grant_type=authorization_code`) and the tokens stored, encrypted;
 * - the `INSTALL` and `UNINSTALL` webhooks, signed as HighLevel's Webhook Integration Guide says
 *   since 1 July 2026: `X-GHL-Signature`, an Ed25519 signature (base64) of the raw body, checked
 *   with HighLevel's public key (GHL_WEBHOOK_PUBLIC_KEY, PEM). The legacy RSA `X-WH-Signature` is
 *   no longer sent and not accepted. An install starts the location (resumes it if an uninstall
 *   had paused it); an uninstall pauses it and deletes its tokens. Each is acted on once: an event
 *   whose `timestamp` is more than 5 minutes from our clock is refused (400), and one whose
 *   `webhookId` was seen is acknowledged (200, `duplicate: true`) and ignored (webhook-replay.ts).
 *   A 2xx for a replay because HighLevel's guide asks for 200 on duplicates: it is not an error of
 *   the sender's, and a 4xx would show a failed delivery in the app's webhook logs.
 *
 * The callback is throttled per client address and overall (callback-throttle.ts), and its `code`
 * is never logged: the route's request log shows its path only. HighLevel starts installs from its
 * marketplace, with no `state` of ours to check, so none is required.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { ConfigError, type Logger, type OAuthClient, type OAuthOwner, type OAuthStore, type ProducerLocations } from '@ghl-ingest/queue';
import { locationIdSchema } from '@ghl-ingest/schema';
import type { FastifyPluginCallback } from 'fastify';
import { z } from 'zod';
import { CallbackThrottle } from './callback-throttle.ts';
import type { WebhookReplayGuard } from './webhook-replay.ts';

export { WebhookReplayGuard } from './webhook-replay.ts';

export const SIGNATURE_HEADER = 'x-ghl-signature';

/** HighLevel's webhook public key from its PEM; a clear error when it is not an Ed25519 public key. */
export function webhookKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem.replace(/\\n/g, '\n'));
  } catch (error) {
    throw new ConfigError(`GHL_WEBHOOK_PUBLIC_KEY is not a PEM public key: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new ConfigError(`GHL_WEBHOOK_PUBLIC_KEY must be HighLevel's Ed25519 key, not ${String(key.asymmetricKeyType)}`);
  return key;
}

/** Whether `signature` (base64, from X-GHL-Signature) signs exactly these bytes. */
export function signedByHighLevel(rawBody: Buffer, signature: string | undefined, key: KeyObject): boolean {
  if (signature === undefined || signature === '') return false;
  const bytes = Buffer.from(signature, 'base64');
  if (bytes.length !== 64) return false;
  return verify(null, rawBody, key, bytes);
}

const id = locationIdSchema; // a company id follows the same rule
const installEvent = z.looseObject({
  type: z.literal('INSTALL'),
  appId: z.string(),
  installType: z.enum(['Location', 'Company']).optional(),
  locationId: id.optional(),
  companyId: id.optional(),
});
const uninstallEvent = z.looseObject({ type: z.literal('UNINSTALL'), appId: z.string(), locationId: id.optional(), companyId: id.optional() });

export type MarketplaceEvent = z.infer<typeof installEvent> | z.infer<typeof uninstallEvent>;

/** The event, or undefined for events this product does not act on (other types are acknowledged and ignored). */
export function parseMarketplaceEvent(body: unknown): MarketplaceEvent | { type: 'other' } | { type: 'invalid'; reason: string } {
  const type = (body as { type?: unknown } | null)?.type;
  if (type !== 'INSTALL' && type !== 'UNINSTALL') return { type: 'other' };
  const parsed = (type === 'INSTALL' ? installEvent : uninstallEvent).safeParse(body);
  if (!parsed.success) return { type: 'invalid', reason: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
  return parsed.data;
}

export interface MarketplaceDeps {
  store: OAuthStore;
  /** Undefined without GHL_CLIENT_ID / GHL_CLIENT_SECRET: the callback says so. */
  client: OAuthClient | undefined;
  /** Undefined without GHL_WEBHOOK_PUBLIC_KEY: webhooks are refused, saying so. */
  webhookKey: KeyObject | undefined;
  state: ProducerLocations;
  /** Refuses stale events and acts on each webhookId once. */
  replay: WebhookReplayGuard;
  /** Default: 10 hits at once per client address, 60 overall, each refilled per minute. */
  callbackThrottle?: CallbackThrottle;
  logger: Logger;
}

/** The callback's request log line, without its query (the `code` is a credential until spent). */
const CALLBACK_LOG = {
  req: (req: { method: string; url: string; ip?: string }) => ({ method: req.method, url: req.url.split('?')[0], remoteAddress: req.ip }),
};

/** The install callback and the marketplace webhooks, as a fastify plugin of the intake. */
export function marketplaceRoutes(deps: MarketplaceDeps): FastifyPluginCallback {
  return (app, _options, ready) => {
    // Signatures are over the exact bytes HighLevel sent: this scope keeps JSON bodies raw.
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    const throttle = deps.callbackThrottle ?? new CallbackThrottle();
    app.get('/oauth/callback', { logSerializers: CALLBACK_LOG }, async (request, reply) => {
      const allowed = throttle.take(request.ip);
      if (!allowed.ok) {
        deps.logger.warn({ scope: allowed.scope }, 'install callback throttled');
        return reply
          .code(429)
          .header('retry-after', String(allowed.retryAfterSeconds))
          .send({ error: 'too_many_requests', message: `too many install attempts; retry in ${allowed.retryAfterSeconds} s` });
      }
      const code = (request.query as Record<string, unknown>).code;
      if (typeof code !== 'string' || code === '')
        return reply.code(400).send({ error: 'bad_request', message: 'the install redirect carries ?code=...; none was given' });
      if (deps.client === undefined) {
        return reply.code(404).send({ error: 'not_configured', message: 'set GHL_CLIENT_ID and GHL_CLIENT_SECRET to take installs' });
      }
      const answer = await deps.client.exchangeCode(code);
      if (answer.kind === 'unavailable')
        return reply
          .code(503)
          .header('retry-after', '5')
          .send({ error: 'unavailable', message: `HighLevel could not exchange the code now (${answer.reason}); reload this page` });
      if (answer.kind !== 'granted') return reply.code(400).send({ error: 'code_refused', message: `HighLevel refused the install code: ${answer.reason}` });
      const { grant } = answer;
      const owner: OAuthOwner | undefined =
        grant.userType === 'Company' || (grant.locationId === undefined && grant.companyId !== undefined)
          ? { kind: 'company', id: grant.companyId ?? '' }
          : grant.locationId === undefined
            ? undefined
            : { kind: 'location', id: grant.locationId };
      if (owner === undefined || grant.refreshToken === undefined)
        return reply.code(400).send({ error: 'code_refused', message: 'HighLevel granted no location or company token' });
      await deps.store.put(owner, { refreshToken: grant.refreshToken, accessToken: grant.accessToken, expiresAt: grant.expiresAt, scopes: grant.scopes });
      if (owner.kind === 'location') await resumeIfUninstalled(deps, owner.id);
      deps.logger.info({ [owner.kind === 'location' ? 'locationId' : 'companyId']: owner.id }, 'installed: tokens stored');
      return reply
        .type('text/plain')
        .send(`ghl-ingest: installed for ${owner.kind === 'location' ? 'location' : 'agency'} ${owner.id}. You can close this page.\n`);
    });

    app.post('/webhooks/highlevel', async (request, reply) => {
      if (deps.webhookKey === undefined) {
        return reply
          .code(404)
          .send({ error: 'not_configured', message: "set GHL_WEBHOOK_PUBLIC_KEY (HighLevel's Ed25519 webhook key) to take marketplace webhooks" });
      }
      const raw = request.body;
      const signature = request.headers[SIGNATURE_HEADER];
      if (!Buffer.isBuffer(raw) || !signedByHighLevel(raw, typeof signature === 'string' ? signature : undefined, deps.webhookKey)) {
        deps.logger.warn({ hasSignature: signature !== undefined }, 'marketplace webhook refused: X-GHL-Signature does not verify');
        return reply.code(401).send({ error: 'unauthorized', message: 'X-GHL-Signature does not verify this body' });
      }
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return reply.code(400).send({ error: 'bad_request', message: 'the body is not JSON' });
      }
      const event = parseMarketplaceEvent(body);
      if (event.type === 'invalid') return reply.code(400).send({ error: 'bad_request', message: event.reason });
      if (event.type === 'other') return reply.send({ ok: true });
      const verdict = await deps.replay.check(event);
      if (verdict.kind === 'refused') {
        deps.logger.warn({ type: event.type, reason: verdict.reason }, 'marketplace webhook refused: outside the replay window');
        return reply.code(400).send({ error: 'replay_refused', message: verdict.reason });
      }
      if (verdict.kind === 'duplicate') {
        deps.logger.info({ type: event.type }, 'marketplace webhook seen already: ignored');
        return reply.send({ ok: true, duplicate: true });
      }
      try {
        await act(deps, event);
      } catch (error) {
        // Not acted on: a resend of it must not be taken for a replay.
        await deps.replay.forget(event.webhookId as string).catch(() => undefined);
        throw error;
      }
      return reply.send({ ok: true });
    });
    ready();
  };
}

/** What an INSTALL or UNINSTALL does, once its signature and freshness are checked. */
async function act(deps: MarketplaceDeps, event: MarketplaceEvent): Promise<void> {
  if (event.type === 'INSTALL' && event.locationId !== undefined) {
    // Its tokens come from the install redirect or its agency; an uninstall's pause ends.
    if (event.companyId !== undefined && (await deps.store.info({ kind: 'company', id: event.companyId })) !== undefined) {
      const own = await deps.store.info({ kind: 'location', id: event.locationId });
      if (own === undefined || own.revoked !== undefined) {
        await deps.store.remove({ kind: 'location', id: event.locationId });
        await deps.store.linkToCompany(event.locationId, event.companyId);
      }
    }
    await resumeIfUninstalled(deps, event.locationId);
    deps.logger.info({ locationId: event.locationId }, 'marketplace INSTALL: location started');
  } else if (event.type === 'UNINSTALL') {
    const at = new Date().toISOString();
    if (event.locationId !== undefined) {
      const reason = `${UNINSTALLED} (UNINSTALL webhook, ${at}): install it again to resume`;
      await deps.store.revoke({ kind: 'location', id: event.locationId }, reason);
      await deps.state.pause(event.locationId, reason);
      deps.logger.warn({ locationId: event.locationId }, 'marketplace UNINSTALL: location paused, its tokens deleted');
    } else if (event.companyId !== undefined) {
      await deps.store.revoke({ kind: 'company', id: event.companyId }, `${UNINSTALLED} from the agency (UNINSTALL webhook, ${at})`);
      deps.logger.warn({ companyId: event.companyId }, 'marketplace UNINSTALL: agency tokens deleted');
    }
  }
}

const UNINSTALLED = 'the app was uninstalled';

/** A location paused by an uninstall (or a revoked token) starts again when the app is installed again. */
async function resumeIfUninstalled(deps: MarketplaceDeps, locationId: string): Promise<void> {
  const hold = await deps.state.hold(locationId);
  if (hold?.state === 'paused') await deps.state.resume(locationId);
}

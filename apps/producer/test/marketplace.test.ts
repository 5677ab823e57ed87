/**
 * The intake as a marketplace app's endpoint, against the stand-in: the install redirect
 * (`GET /oauth/callback?code=`) stores the tokens; signed INSTALL and UNINSTALL webhooks start and
 * stop a location (an uninstall pauses it and deletes its tokens); a webhook whose X-GHL-Signature
 * does not verify is refused.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { createLogger, createRedis, loadConfig, LocationReader, OAuthStore, TokenCipher, whenReady } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { startIntake } from '../src/intake.ts';

/** Every log line the intake wrote, for tests that check what is never logged. */
const logged: string[] = [];
const quiet = createLogger(
  'info',
  'intake',
  new Writable({
    write: (c: Buffer, _e, done) => {
      logged.push(c.toString());
      done();
    },
  }),
);

/** As HighLevel sends it: stamped with the time it was sent and an id of its own. */
const stamped = (event: Record<string, unknown>) => ({ timestamp: new Date().toISOString(), webhookId: randomUUID(), ...event });

describe('the intake as a marketplace app: install redirect and webhooks', () => {
  const redis = useRedis();
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function setUp() {
    const fake = await FakeHighLevel.start({ oauth: { clientId: 'app', clientSecret: 'app-secret' } });
    closers.push(() => fake.close());
    const key = randomBytes(32).toString('base64');
    const config = loadConfig({
      ...redis.env,
      GHL_API_BASE_URL: fake.url,
      GHL_CLIENT_ID: 'app',
      GHL_CLIENT_SECRET: 'app-secret',
      GHL_TOKEN_KEY: key,
      GHL_WEBHOOK_PUBLIC_KEY: fake.oauth.webhookPublicKey,
    });
    const connection = createRedis(config, 'service', `${redis.prefix}:intake`);
    await whenReady(connection, 10_000);
    const intake = await startIntake(connection, config, quiet, 0);
    closers.push(async () => {
      await intake.close();
      connection.disconnect();
    });
    const store = new OAuthStore(redis.client(), redis.prefix, TokenCipher.fromSetting(key));
    const state = new LocationReader(redis.client(), { prefix: redis.prefix });
    const send = async (event: Record<string, unknown>) =>
      (await (
        await fetch(`${fake.url}/__admin/webhooks/send`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ url: `${intake.url}/webhooks/highlevel`, event: stamped(event) }),
        })
      ).json()) as {
        status: number;
        body: string;
      };
    /** Sends exactly this event, as signed by HighLevel: no stamp added. */
    const resend = async (event: Record<string, unknown>) =>
      (await (
        await fetch(`${fake.url}/__admin/webhooks/send`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ url: `${intake.url}/webhooks/highlevel`, event }),
        })
      ).json()) as { status: number; body: string };
    return { fake, intake, store, state, send, resend };
  }

  it('the install redirect exchanges its code once and stores the tokens, encrypted', async () => {
    const { fake, intake, store } = await setUp();
    fake.oauth.addCode('code-L1', { kind: 'location', id: 'L1' });
    const res = await fetch(`${intake.url}/oauth/callback?code=code-L1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('installed for location L1');
    const record = await store.read({ kind: 'location', id: 'L1' });
    expect(record).toMatchObject({ source: 'location', hasRefreshToken: true });
    expect(record?.accessToken).toMatch(/^at-/);
    // Stored sealed: the raw hash holds no token.
    const raw = JSON.stringify(await redis.admin.hgetall(`${redis.prefix}:oauth:{L1}`));
    expect(raw).not.toContain(record?.accessToken ?? 'x');
    expect(raw).not.toContain(record?.refreshToken ?? 'x');
    expect(fake.stats().oauth.codeExchanges).toBe(1);

    const again = await fetch(`${intake.url}/oauth/callback?code=code-L1`);
    expect(again.status).toBe(400);
    expect(((await again.json()) as { message: string }).message).toContain('invalid_grant');
    expect((await fetch(`${intake.url}/oauth/callback`)).status).toBe(400);
  });

  it('UNINSTALL pauses the location and deletes its tokens; INSTALL and a new redirect start it again', async () => {
    const { fake, intake, store, state, send } = await setUp();
    fake.oauth.addCode('code-1', { kind: 'location', id: 'L2' });
    expect((await fetch(`${intake.url}/oauth/callback?code=code-1`)).status).toBe(200);

    expect((await send({ type: 'UNINSTALL', appId: 'app', locationId: 'L2', companyId: 'agency' })).status).toBe(200);
    expect(await store.info({ kind: 'location', id: 'L2' })).toMatchObject({
      hasRefreshToken: false,
      revoked: expect.stringContaining('uninstalled') as unknown,
    });
    expect((await store.read({ kind: 'location', id: 'L2' }))?.accessToken).toBeUndefined();
    expect(await state.hold('L2')).toMatchObject({ state: 'paused', reason: expect.stringContaining('install it again') as unknown });

    expect((await send({ type: 'INSTALL', appId: 'app', installType: 'Location', locationId: 'L2', companyId: 'agency' })).status).toBe(200);
    expect(await state.hold('L2')).toBeUndefined();
    fake.oauth.addCode('code-2', { kind: 'location', id: 'L2' });
    expect((await fetch(`${intake.url}/oauth/callback?code=code-2`)).status).toBe(200);
    expect(await store.info({ kind: 'location', id: 'L2' })).toMatchObject({ hasRefreshToken: true, revoked: undefined });
  });

  it("an agency's install: its token is stored; a location installed under it takes its tokens from the agency", async () => {
    const { fake, intake, store, send } = await setUp();
    fake.oauth.addCode('code-agency', { kind: 'company', id: 'agency-9' });
    const res = await fetch(`${intake.url}/oauth/callback?code=code-agency`);
    expect(await res.text()).toContain('installed for agency agency-9');
    expect((await send({ type: 'INSTALL', appId: 'app', installType: 'Location', locationId: 'L9', companyId: 'agency-9' })).status).toBe(200);
    expect(await store.info({ kind: 'location', id: 'L9' })).toMatchObject({ source: 'from-company', companyId: 'agency-9' });
  });

  it('a webhook that is not signed by HighLevel is refused and changes nothing', async () => {
    const { intake, store, state } = await setUp();
    const forged = JSON.stringify({ type: 'UNINSTALL', appId: 'app', locationId: 'L3' });
    const post = (headers: Record<string, string>) =>
      fetch(`${intake.url}/webhooks/highlevel`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: forged });
    expect((await post({})).status).toBe(401);
    expect((await post({ 'x-ghl-signature': randomBytes(64).toString('base64') })).status).toBe(401);
    expect((await post({ 'x-wh-signature': randomBytes(256).toString('base64') })).status).toBe(401); // the retired RSA header is not accepted
    expect(await state.hold('L3')).toBeUndefined();
    expect(await store.info({ kind: 'location', id: 'L3' })).toBeUndefined();
  });

  it('a captured UNINSTALL sent again after a reinstall is acknowledged and changes nothing', async () => {
    const { fake, intake, store, state, resend } = await setUp();
    fake.oauth.addCode('code-r1', { kind: 'location', id: 'L4' });
    expect((await fetch(`${intake.url}/oauth/callback?code=code-r1`)).status).toBe(200);
    const uninstall = stamped({ type: 'UNINSTALL', appId: 'app', locationId: 'L4' });
    expect((await resend(uninstall)).status).toBe(200);
    expect(await state.hold('L4')).toMatchObject({ state: 'paused' });

    expect((await resend(stamped({ type: 'INSTALL', appId: 'app', installType: 'Location', locationId: 'L4' }))).status).toBe(200);
    fake.oauth.addCode('code-r2', { kind: 'location', id: 'L4' });
    expect((await fetch(`${intake.url}/oauth/callback?code=code-r2`)).status).toBe(200);

    const replay = await resend(uninstall);
    expect(replay.status).toBe(200);
    expect(JSON.parse(replay.body)).toEqual({ ok: true, duplicate: true });
    expect(await state.hold('L4')).toBeUndefined();
    expect(await store.info({ kind: 'location', id: 'L4' })).toMatchObject({ hasRefreshToken: true, revoked: undefined });
  });

  it('an event stamped outside the 5-minute window, or not stamped, is refused and changes nothing', async () => {
    const { state, resend } = await setUp();
    const old = new Date(Date.now() - 6 * 60_000).toISOString();
    const answers = await Promise.all([
      resend({ type: 'UNINSTALL', appId: 'app', locationId: 'L5', timestamp: old, webhookId: randomUUID() }),
      resend({ type: 'UNINSTALL', appId: 'app', locationId: 'L5', timestamp: new Date(Date.now() + 6 * 60_000).toISOString(), webhookId: randomUUID() }),
      resend({ type: 'UNINSTALL', appId: 'app', locationId: 'L5', webhookId: randomUUID() }),
      resend({ type: 'UNINSTALL', appId: 'app', locationId: 'L5', timestamp: new Date().toISOString() }),
    ]);
    expect(answers.map((a) => a.status)).toEqual([400, 400, 400, 400]);
    expect(answers.map((a) => (JSON.parse(a.body) as { error: string }).error)).toEqual(Array(4).fill('replay_refused'));
    expect(await state.hold('L5')).toBeUndefined();
  });

  it('the install callback is throttled per client, and its code never reaches the log', async () => {
    const { fake, intake } = await setUp();
    fake.oauth.addCode('code-secret-abc123', { kind: 'location', id: 'L6' });
    expect((await fetch(`${intake.url}/oauth/callback?code=code-secret-abc123`)).status).toBe(200);
    const answers: Response[] = [];
    for (let i = 0; i < 30; i += 1) fake.oauth.addCode(`guess-${i}`, { kind: 'location', id: 'L6' });
    for (let i = 0; i < 30; i += 1) answers.push(await fetch(`${intake.url}/oauth/callback?code=guess-${i}`));
    const throttled = answers.filter((a) => a.status === 429);
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled[0]?.headers.get('retry-after')).toMatch(/^\d+$/);
    // Each hit let through costs one exchange; the throttled ones cost none.
    expect(fake.stats().oauth.codeExchanges).toBe(1 + answers.filter((a) => a.status !== 429).length);
    expect(logged.join('')).toContain('/oauth/callback');
    expect(logged.join('')).not.toContain('code-secret-abc123');
    expect(logged.join('')).not.toContain('guess-');
  });
});

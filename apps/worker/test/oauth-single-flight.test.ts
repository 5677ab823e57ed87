/**
 * OAuth single flight on a real Redis against the stand-in: many processes (here, many clients
 * with connections of their own) needing a location's token at once spend its refresh token once;
 * a refresh whose holder died is taken over when its lease ends; a revoked authorisation is said
 * once and remembered, without asking HighLevel again.
 */
import { randomBytes } from 'node:crypto';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { OAuthClient, OAuthStore, OAuthTokens, TokenCipher, type AccessAnswer } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { Credentials, NO_OAUTH_RECHECK_MS } from '../src/credentials.ts';
import { TokenStore } from '../src/tokens.ts';

describe('OAuth tokens: one refresh per refresh token across processes', () => {
  const redis = useRedis();
  let fake: FakeHighLevel | undefined;
  afterEach(async () => {
    await fake?.close();
  });
  const cipher = TokenCipher.fromSetting(randomBytes(32).toString('base64'));

  function processes(count: number, leaseMs = 10_000): { tokens: OAuthTokens; store: OAuthStore }[] {
    return Array.from({ length: count }, () => {
      const store = new OAuthStore(redis.client(), redis.prefix, cipher);
      const client = new OAuthClient({ baseUrl: (fake as FakeHighLevel).url, clientId: 'app', clientSecret: 'secret', timeoutMs: 2_000 });
      return { store, tokens: new OAuthTokens({ store, client, leaseMs }) };
    });
  }

  /** Asks until the answer is not a wait (as the worker does, the location waiting meanwhile). */
  async function settled(tokens: OAuthTokens, locationId: string): Promise<AccessAnswer> {
    for (;;) {
      const a = await tokens.accessFor(locationId);
      if (a.kind !== 'wait') return a;
      await new Promise((r) => setTimeout(r, a.ms));
    }
  }

  it('eight processes needing an expired token at once: one refresh, one new token for all', async () => {
    fake = await FakeHighLevel.start({ oauth: { clientId: 'app', clientSecret: 'secret', accessTtlMs: 60_000 } });
    const { refreshToken } = fake.oauth.authorise({ kind: 'location', id: 'sf' });
    const all = processes(8);
    await all[0]?.store.put({ kind: 'location', id: 'sf' }, { refreshToken });
    const answers = await Promise.all(all.map((p) => settled(p.tokens, 'sf')));
    expect(new Set(answers.map((a) => (a.kind === 'token' ? a.token : a.kind))).size).toBe(1);
    expect(answers[0]?.kind).toBe('token');
    expect(fake.stats().oauth).toMatchObject({ refreshes: 1, reuse: 0 });
    // Fresh now: asked again, nobody refreshes.
    await Promise.all(all.map((p) => settled(p.tokens, 'sf')));
    expect(fake.stats().oauth.refreshes).toBe(1);
  });

  it("a holder that died mid-refresh: when its lease ends another process refreshes; HighLevel's answer decides", async () => {
    fake = await FakeHighLevel.start({ oauth: { clientId: 'app', clientSecret: 'secret', accessTtlMs: 60_000 } });
    const { refreshToken } = fake.oauth.authorise({ kind: 'location', id: 'dead' });
    const [a, b] = processes(2, 300);
    await a?.store.put({ kind: 'location', id: 'dead' }, { refreshToken });
    const record = await a?.store.read({ kind: 'location', id: 'dead' });
    // A process takes the lease and dies before asking HighLevel.
    expect((await a?.store.begin({ kind: 'location', id: 'dead' }, record?.gen ?? '', 300))?.kind).toBe('mine');
    expect((await b?.tokens.accessFor('dead'))?.kind).toBe('wait');
    await new Promise((r) => setTimeout(r, 350));
    expect((await settled(b?.tokens as OAuthTokens, 'dead')).kind).toBe('token');
    expect(fake.stats().oauth).toMatchObject({ refreshes: 1, reuse: 0 });
  });

  it('revoked at HighLevel: the location is told to re-authorise, once; others read it from the record', async () => {
    fake = await FakeHighLevel.start({ oauth: { clientId: 'app', clientSecret: 'secret', accessTtlMs: 60_000 } });
    const { refreshToken } = fake.oauth.authorise({ kind: 'location', id: 'gone' });
    fake.oauth.revoke({ kind: 'location', id: 'gone' });
    const [a, b] = processes(2);
    await a?.store.put({ kind: 'location', id: 'gone' }, { refreshToken });
    const first = await settled(a?.tokens as OAuthTokens, 'gone');
    expect(first).toMatchObject({ kind: 'revoked', reason: expect.stringMatching(/invalid_grant.*re-authorise/) as unknown });
    expect((await settled(b?.tokens as OAuthTokens, 'gone')).kind).toBe('revoked');
    expect(fake.stats().oauth).toMatchObject({ revokedRefused: 1, reuse: 0 });
    // A new authorisation (auth import, or an install) replaces the revoked record.
    const again = fake.oauth.authorise({ kind: 'location', id: 'gone' });
    await a?.store.put({ kind: 'location', id: 'gone' }, { refreshToken: again.refreshToken });
    expect((await settled(b?.tokens as OAuthTokens, 'gone')).kind).toBe('token');
  });

  it("a location whose own refresh is refused asks its agency, as HighLevel's SDK does, and carries on from it", async () => {
    fake = await FakeHighLevel.start({ oauth: { clientId: 'app', clientSecret: 'secret', accessTtlMs: 60_000 } });
    const own = fake.oauth.authorise({ kind: 'location', id: 'rescued' });
    fake.oauth.revoke({ kind: 'location', id: 'rescued' });
    fake.oauth.install('agency', ['rescued']);
    const agency = fake.oauth.authorise({ kind: 'company', id: 'agency' });
    const [p] = processes(1);
    await p?.store.put({ kind: 'location', id: 'rescued' }, { refreshToken: own.refreshToken });
    await p?.store.put({ kind: 'company', id: 'agency' }, { refreshToken: agency.refreshToken });
    expect((await settled(p?.tokens as OAuthTokens, 'rescued')).kind).toBe('token');
    expect(await p?.store.info({ kind: 'location', id: 'rescued' })).toMatchObject({ source: 'from-company', companyId: 'agency', revoked: undefined });
    expect(fake.stats().oauth).toMatchObject({ revokedRefused: 1, locationTokens: 1, reuse: 0 });
  });

  it('HighLevel unavailable for refreshes: every process backs off together and uses what is left of the token; then it refreshes', async () => {
    fake = await FakeHighLevel.start({ oauth: { clientId: 'app', clientSecret: 'secret', accessTtlMs: 60_000 } });
    const { refreshToken } = fake.oauth.authorise({ kind: 'location', id: 'down' });
    const [a, b] = processes(2);
    await a?.store.put({ kind: 'location', id: 'down' }, { refreshToken });
    fake.oauthOutage(1_500);
    const first = await a?.tokens.accessFor('down');
    expect(first).toMatchObject({ kind: 'wait', reason: 'HighLevel answered 503' });
    // The other process does not ask HighLevel meanwhile: the record says when to try again.
    const requests = fake.stats().byStatus['503'];
    expect((await b?.tokens.accessFor('down'))?.kind).toBe('wait');
    expect(fake.stats().byStatus['503']).toBe(requests);
    expect(await a?.store.info({ kind: 'location', id: 'down' })).toMatchObject({ failures: 1, lastError: 'HighLevel answered 503' });
    await new Promise((r) => setTimeout(r, 1_600));
    expect((await settled(b?.tokens as OAuthTokens, 'down')).kind).toBe('token');
    expect(await a?.store.info({ kind: 'location', id: 'down' })).toMatchObject({ failures: 0, revoked: undefined });
  });

  it('a location without OAuth tokens posts with GHL_TOKEN, and the store is asked about it again every 30 s, not per message', async () => {
    fake = await FakeHighLevel.start({ oauth: { clientId: 'app', clientSecret: 'secret', accessTtlMs: 60_000 } });
    const agency = fake.oauth.authorise({ kind: 'company', id: 'agency' });
    const [p] = processes(1);
    await p?.store.put({ kind: 'company', id: 'agency' }, { refreshToken: agency.refreshToken });
    let now = Date.now();
    const credentials = new Credentials(new TokenStore({ file: undefined, token: 'static-token' }), p?.tokens, () => now);
    const staticToken = { kind: 'token', token: 'static-token', oauth: false };
    // Not installed at the agency: GHL_TOKEN, asked once (the agency was asked for a location token once).
    for (let i = 0; i < 20; i += 1) expect(await credentials.forLocation('plain')).toEqual(staticToken);
    const refused = fake.stats().byStatus['400'] ?? 0;
    expect(refused).toBe(1);
    // Installed now: still GHL_TOKEN until the recheck, then the agency's location token.
    fake.oauth.install('agency', ['plain']);
    expect(await credentials.forLocation('plain')).toEqual(staticToken);
    now += NO_OAUTH_RECHECK_MS + 1;
    expect(await credentials.forLocation('plain')).toMatchObject({ kind: 'token', oauth: true });
    expect(fake.stats().oauth.locationTokens).toBe(1);
    // Without a fallback there is nothing to remember: the location pauses (and is asked again when resumed).
    const bare = new Credentials(new TokenStore({ file: undefined, token: undefined }), p?.tokens, () => now);
    expect(await bare.forLocation('elsewhere')).toMatchObject({ kind: 'paused' });
    fake.oauth.install('agency', ['elsewhere']);
    expect(await bare.forLocation('elsewhere')).toMatchObject({ kind: 'token', oauth: true });
  });
});

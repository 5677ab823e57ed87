import { afterEach, describe, expect, it } from 'vitest';
import { API_VERSION, FakeHighLevel, INBOUND_PATH } from './server.ts';

let fake: FakeHighLevel | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const CLIENT = { client_id: 'app-id', client_secret: 'app-secret' };

async function start(accessTtlMs = 60_000): Promise<FakeHighLevel> {
  fake = await FakeHighLevel.start({ oauth: { clientId: 'app-id', clientSecret: 'app-secret', accessTtlMs } });
  return fake;
}

async function form(f: FakeHighLevel, path: string, fields: Record<string, string>, bearer?: string) {
  const res = await fetch(`${f.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function inbound(f: FakeHighLevel, token: string) {
  const res = await fetch(`${f.url}${INBOUND_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, version: API_VERSION },
    body: JSON.stringify({ type: 'SMS', contactId: 'c1', message: 'hi', altId: `a${Math.random()}` }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('the stand-in speaks OAuth as HighLevel does', () => {
  it('refresh_token: a new pair each time; the spent refresh token is invalid_grant, counted as reuse', async () => {
    const f = await start();
    const { refreshToken } = f.oauth.authorise({ kind: 'location', id: 'locA' });
    const first = await form(f, '/oauth/token', { ...CLIENT, grant_type: 'refresh_token', refresh_token: refreshToken, user_type: 'Location' });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ token_type: 'Bearer', expires_in: 60, userType: 'Location', locationId: 'locA' });
    expect(first.body.refresh_token).not.toBe(refreshToken);
    expect(await inbound(f, String(first.body.access_token))).toBe(201);
    const again = await form(f, '/oauth/token', { ...CLIENT, grant_type: 'refresh_token', refresh_token: refreshToken, user_type: 'Location' });
    expect(again).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(f.stats().oauth).toMatchObject({ refreshes: 1, reuse: 1 });
  });

  it('refuses wrong app credentials (401 invalid_client), unknown grants (422), revoked tokens (invalid_grant, not reuse)', async () => {
    const f = await start();
    const { refreshToken } = f.oauth.authorise({ kind: 'location', id: 'locA' });
    expect(
      await form(f, '/oauth/token', { client_id: 'app-id', client_secret: 'nope', grant_type: 'refresh_token', refresh_token: refreshToken }),
    ).toMatchObject({
      status: 401,
      body: { error: 'invalid_client' },
    });
    expect((await form(f, '/oauth/token', { ...CLIENT, grant_type: 'password' })).status).toBe(422);
    f.oauth.revoke({ kind: 'location', id: 'locA' });
    expect(await form(f, '/oauth/token', { ...CLIENT, grant_type: 'refresh_token', refresh_token: refreshToken })).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant' },
    });
    expect(f.stats().oauth).toMatchObject({ reuse: 0, revokedRefused: 1 });
  });

  it('access tokens expire: the inbound endpoint answers 401', async () => {
    const f = await start(300);
    const { accessToken } = f.oauth.authorise({ kind: 'location', id: 'locA' });
    expect(await inbound(f, accessToken)).toBe(201);
    await new Promise((r) => setTimeout(r, 400));
    expect(await inbound(f, accessToken)).toBe(401);
    expect(f.stats().oauth.expiredAccess).toBe(1);
  });

  it('authorization_code once; locationToken with a Company token where the app is installed', async () => {
    const f = await start();
    f.oauth.addCode('code-1', { kind: 'company', id: 'agency' });
    f.oauth.install('agency', ['locA']);
    const company = await form(f, '/oauth/token', { ...CLIENT, grant_type: 'authorization_code', code: 'code-1' });
    expect(company.body).toMatchObject({ userType: 'Company', companyId: 'agency', approvedLocations: ['locA'] });
    expect((await form(f, '/oauth/token', { ...CLIENT, grant_type: 'authorization_code', code: 'code-1' })).status).toBe(400);
    const bearer = String(company.body.access_token);
    const location = await form(f, '/oauth/locationToken', { companyId: 'agency', locationId: 'locA' }, bearer);
    expect(location).toMatchObject({ status: 200, body: { userType: 'Location', locationId: 'locA' } });
    expect(await inbound(f, String(location.body.access_token))).toBe(201);
    expect((await form(f, '/oauth/locationToken', { companyId: 'agency', locationId: 'locB' }, bearer)).status).toBe(400); // not installed
    expect((await form(f, '/oauth/locationToken', { companyId: 'agency', locationId: 'locA' }, 'not-a-token')).status).toBe(401);
  });
});

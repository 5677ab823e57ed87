import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OAuthOwner, OAuthRecordInfo } from '@ghl-ingest/queue';
import { useTempDirs } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { diagnose, exitCodeOf, renderFindings, summarize } from './doctor.ts';
import type { ApiFacts, DoctorFacts, Finding, NodeFacts, Read, RedisFacts, Severity, TokenFacts } from './doctor/facts.ts';
import { tokensFileFacts } from './doctor/gather.ts';
import { judgeClock, judgeMode, judgeNodeEviction, judgeNodeMemory, judgeNodePersistence, judgeNodeVersion, perMaster } from './doctor/redis-policy.ts';
import { oauthFindings, tokenFindings, tokenSource } from './doctor/token-policy.ts';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const known = <T>(value: T): Read<T> => ({ known: true, value });
const denied: Read<never> = { known: false, why: "ERR unknown command 'CONFIG'" };
const MB = 1_048_576;

/** A healthy Redis, changed by `over`. */
function node(over: Partial<NodeFacts> = {}): NodeFacts {
  return {
    node: '10.0.0.1:6379',
    version: known('7.2.4'),
    maxmemoryPolicy: known('noeviction'),
    memory: known({ maxmemory: 1024 * MB, used: 10 * MB }),
    aofEnabled: known(true),
    appendfsync: known('everysec'),
    savePoints: known(''),
    clock: known({ offsetMs: 2, uncertaintyMs: 0.5 }),
    ...over,
  };
}

const ALL_SCOPES = [
  'conversations/message.write',
  'conversations/message.readonly',
  'conversations.readonly',
  'conversations.write',
  'contacts.write',
  'oauth.write',
];

function record(owner: OAuthOwner, over: Partial<OAuthRecordInfo> = {}): OAuthRecordInfo {
  return {
    owner,
    source: owner.kind === 'company' ? 'company' : 'location',
    companyId: undefined,
    expiresAt: NOW + 3_600_000,
    refreshedAt: undefined,
    refreshes: 0,
    failures: 0,
    lastError: undefined,
    revoked: undefined,
    retryAt: 0,
    gen: '1',
    refreshing: false,
    hasRefreshToken: true,
    keyId: 'k1',
    scopes: ALL_SCOPES,
    ...over,
  };
}
const loc = (id: string): OAuthOwner => ({ kind: 'location', id });
const agency = (id: string): OAuthOwner => ({ kind: 'company', id });

function tokens(over: Partial<TokenFacts> = {}): TokenFacts {
  return { known: known([]), file: { kind: 'unset' }, fallback: false, oauth: { kind: 'off' }, reconcile: true, ...over };
}

function redis(over: Partial<RedisFacts> = {}): RedisFacts {
  return {
    mode: { kind: 'single', role: known({ role: 'master', replicas: 0 }) },
    masters: [node()],
    lua: { allowed: true },
    pubsub: { allowed: true },
    clientName: { allowed: true },
    ...over,
  };
}

function facts(over: { redis?: Partial<RedisFacts>; tokens?: Partial<TokenFacts>; api?: ApiFacts } = {}): DoctorFacts {
  return {
    redis: { reachable: true, where: 'Redis at redis://10.0.0.1:6379', facts: redis(over.redis) },
    tokens: tokens({ fallback: true, ...over.tokens }),
    api: over.api ?? { asked: false },
    now: NOW,
  };
}

const find = (findings: Finding[], check: string) => findings.find((x) => x.check === check);
const judgePersistence = (masters: NodeFacts[]) => perMaster('redis.persistence', masters, judgeNodePersistence);
const judgeEviction = (masters: NodeFacts[]) => perMaster('redis.maxmemory-policy', masters, judgeNodeEviction);
const judgeVersion = (masters: NodeFacts[]) => perMaster('redis.version', masters, judgeNodeVersion);
const judgeMemory = (masters: NodeFacts[]) => perMaster('redis.maxmemory', masters, judgeNodeMemory);

describe('persistence', () => {
  const cases: [string, Partial<NodeFacts>, Severity, RegExp][] = [
    ['AOF, fsync every second', {}, 'ok', /every second/],
    ['AOF, fsync always', { appendfsync: known('always') }, 'ok', /always/],
    ['AOF, fsync left to the OS', { appendfsync: known('no') }, 'warning', /about 30 s/],
    ['AOF on, CONFIG disabled', { appendfsync: denied }, 'warning', /could not be read.*check it yourself/],
    ['RDB snapshots only', { aofEnabled: known(false), savePoints: known('3600 1 300 100') }, 'warning', /since the last snapshot.*posted again/],
    ['nothing on disk', { aofEnabled: known(false), savePoints: known('') }, 'blocker', /loses every accepted message/],
    ['AOF off, CONFIG disabled', { aofEnabled: known(false), savePoints: denied }, 'warning', /could not be read/],
    ['INFO refused', { aofEnabled: denied }, 'warning', /could not read it/],
  ];
  it.each(cases)('%s: %s', (_name, over, status, detail) => {
    const f = judgePersistence([node(over)]);
    expect(f.status).toBe(status);
    expect(f.detail).toMatch(detail);
    if (status !== 'ok') expect(f.fix).toBeDefined();
  });

  it('says how to turn AOF on', () => {
    expect(judgePersistence([node({ aofEnabled: known(false) })]).fix).toMatch(/CONFIG SET appendonly yes and CONFIG SET appendfsync everysec.*redis\.conf/);
  });

  it('on a cluster, is as bad as its worst master, and names it', () => {
    const f = judgePersistence([node({ node: 'a:1' }), node({ node: 'b:2', aofEnabled: known(false) }), node({ node: 'c:3' })]);
    expect(f.status).toBe('blocker');
    expect(f.detail).toMatch(/^b:2: nothing on disk/);
    expect(f.detail).not.toMatch(/a:1|c:3/);
  });

  it('on a cluster where all is well, says it once', () => {
    expect(judgePersistence([node({ node: 'a:1' }), node({ node: 'b:2' })]).detail).toBe(
      'AOF, fsync every second (a crash of the host can lose the last second) (all 2 masters)',
    );
  });
});

describe('maxmemory-policy', () => {
  const cases: [string, Read<string>, Severity][] = [
    ['noeviction', known('noeviction'), 'ok'],
    ['allkeys-lru', known('allkeys-lru'), 'blocker'],
    ['volatile-lru', known('volatile-lru'), 'blocker'],
    ['volatile-ttl', known('volatile-ttl'), 'blocker'],
    ['allkeys-random', known('allkeys-random'), 'blocker'],
    ['unreadable', denied, 'warning'],
  ];
  it.each(cases)('%s', (_name, policy, status) => {
    const f = judgeEviction([node({ maxmemoryPolicy: policy })]);
    expect(f.status).toBe(status);
    if (status === 'blocker') expect(f.fix).toMatch(/^run CONFIG SET maxmemory-policy noeviction and put it in redis\.conf/);
    if (status === 'warning') expect(f.fix).toMatch(/check it yourself/);
  });

  it('checks every master of a cluster', () => {
    const f = judgeEviction([node({ node: 'a:1' }), node({ node: 'b:2', maxmemoryPolicy: known('allkeys-lfu') })]);
    expect(f).toMatchObject({ status: 'blocker', detail: expect.stringMatching(/^b:2: allkeys-lfu: when full/) as unknown });
  });
});

describe('several masters', () => {
  it('those saying the same are named together; all well is said once', () => {
    const masters = [
      node({ node: 'a:1', memory: known({ maxmemory: 0, used: MB }) }),
      node({ node: 'b:2', memory: known({ maxmemory: 0, used: 2 * MB }) }),
      node({ node: 'c:3' }),
    ];
    expect(judgeMemory(masters).detail).toBe('a:1, b:2: no maxmemory: Redis grows until the host runs out, and then the OS kills it');
    expect(find(diagnose(facts({ redis: { masters: [node({ node: 'a:1' }), node({ node: 'b:2' })] } })), 'clock.redis')?.detail).toBe(
      "every master's clock is within 2.5 ms of this host's",
    );
  });
});

describe('version', () => {
  const cases: [string, Read<string>, Severity][] = [
    ['7.2.4', known('7.2.4'), 'ok'],
    ['8.0.0', known('8.0.0'), 'ok'],
    ['6.2.14', known('6.2.14'), 'warning'],
    ['6.0.20', known('6.0.20'), 'blocker'],
    ['5.0.0', known('5.0.0'), 'blocker'],
    ['4.0.14', known('4.0.14'), 'blocker'],
    ['not a version', known('unknown'), 'warning'],
    ['unreadable', denied, 'warning'],
  ];
  it.each(cases)('%s', (_name, version, status) => {
    expect(judgeVersion([node({ version })]).status).toBe(status);
  });

  it('a cluster is as old as its oldest master', () => {
    const f = judgeVersion([node({ node: 'a:1' }), node({ node: 'b:2', version: known('6.0.9') })]);
    expect(f.status).toBe('blocker');
    expect(f.detail).toMatch(/^b:2: Redis 6\.0\.9: /);
  });
});

describe('mode', () => {
  const cases: [string, RedisFacts['mode'], number, Severity, RegExp][] = [
    ['one master', { kind: 'single', role: known({ role: 'master', replicas: 1 }) }, 1, 'ok', /one Redis \(master, 1 replica\)/],
    ['a replica', { kind: 'single', role: known({ role: 'slave', replicas: 0 }) }, 1, 'blocker', /replica: it refuses writes/],
    ['role unreadable', { kind: 'single', role: denied }, 1, 'warning', /could not be read/],
    ['a cluster with replicas', { kind: 'cluster', replicas: known(3) }, 3, 'ok', /Redis Cluster: 3 masters, 3 replicas/],
    ['a cluster without replicas', { kind: 'cluster', replicas: known(0) }, 3, 'warning', /0 replicas: a master lost/],
    ['a cluster whose replicas cannot be counted', { kind: 'cluster', replicas: denied }, 3, 'ok', /replicas not counted/],
  ];
  it.each(cases)('%s', (_name, mode, masters, status, detail) => {
    const f = judgeMode(mode, masters);
    expect(f.status).toBe(status);
    expect(f.detail).toMatch(detail);
  });
});

describe('maxmemory', () => {
  const cases: [string, Read<{ maxmemory: number; used: number }>, Severity][] = [
    ['room left', known({ maxmemory: 1024 * MB, used: 100 * MB }), 'ok'],
    ['no limit', known({ maxmemory: 0, used: 100 * MB }), 'warning'],
    ['nearly full', known({ maxmemory: 1024 * MB, used: 900 * MB }), 'warning'],
    ['unreadable', denied, 'warning'],
  ];
  it.each(cases)('%s', (_name, memory, status) => {
    expect(judgeMemory([node({ memory })]).status).toBe(status);
  });
});

describe('Lua, pub/sub and CLIENT SETNAME', () => {
  const refused = { allowed: false as const, why: "NOPERM User app has no permissions to run the 'eval' command" };
  const cases: [string, Partial<RedisFacts>, string, Severity][] = [
    ['Lua refused', { lua: refused }, 'redis.lua', 'blocker'],
    ['pub/sub refused', { pubsub: refused }, 'redis.pubsub', 'blocker'],
    ['CLIENT SETNAME refused', { clientName: refused }, 'redis.client-name', 'warning'],
  ];
  it.each(cases)('%s', (_name, over, check, status) => {
    const f = find(diagnose(facts({ redis: over })), check);
    expect(f?.status).toBe(status);
    expect(f?.detail).toMatch(/NOPERM/);
    expect(f?.fix).toMatch(/ACL SETUSER/);
  });

  it('each is ok when allowed', () => {
    const findings = diagnose(facts());
    for (const check of ['redis.lua', 'redis.pubsub', 'redis.client-name']) expect(find(findings, check)?.status).toBe('ok');
  });
});

describe('clock', () => {
  const cases: [string, number, number, Severity][] = [
    ['2 ms', 2, 0.5, 'ok'],
    ['1.2 s, but the round trip could account for 0.5 s of it', 1_200, 500, 'ok'],
    ['1.5 s ahead', 1_500, 1, 'warning'],
    ['4 minutes behind', -240_000, 1, 'warning'],
    ['10 minutes behind', -600_000, 1, 'blocker'],
    ['a round trip of 3 s', 0, 1_500, 'warning'],
  ];
  it.each(cases)('%s', (_name, offsetMs, uncertaintyMs, status) => {
    expect(judgeClock({ offsetMs, uncertaintyMs }, 'redis', "Redis's clock").status).toBe(status);
  });

  it("judges every master's clock, and HighLevel's with --api", () => {
    const findings = diagnose(
      facts({
        redis: { masters: [node({ node: 'a:1' }), node({ node: 'b:2', clock: known({ offsetMs: 3_000, uncertaintyMs: 1 }) })] },
        api: { asked: true, url: 'https://api', answer: { answered: true, status: 404, ms: 80, clock: { offsetMs: -400_000, uncertaintyMs: 540 } } },
      }),
    );
    expect(find(findings, 'clock.redis')).toMatchObject({
      status: 'warning',
      detail: expect.stringMatching(/^b:2: the master's clock is \+3\.0 s/) as unknown,
    });
    expect(find(findings, 'clock.highlevel')).toMatchObject({ status: 'blocker', detail: expect.stringMatching(/webhook/) as unknown });
  });
});

describe('the API (--api)', () => {
  const cases: [string, ApiFacts, Severity | undefined][] = [
    ['not asked', { asked: false }, undefined],
    ['answered 404 without a token', { asked: true, url: 'u', answer: { answered: true, status: 404, ms: 90, clock: undefined } }, 'ok'],
    ['answered 503', { asked: true, url: 'u', answer: { answered: true, status: 503, ms: 90, clock: undefined } }, 'warning'],
    ['no answer', { asked: true, url: 'u', answer: { answered: false, why: 'ENOTFOUND' } }, 'blocker'],
  ];
  it.each(cases)('%s', (_name, api, status) => {
    expect(find(diagnose(facts({ api })), 'api.reachable')?.status).toBe(status);
  });
});

describe("a location's token source (as the worker picks it)", () => {
  const file = { kind: 'read' as const, path: 'tokens.json', locations: new Set(['locF']) };
  const oauth = (records: OAuthRecordInfo[], refreshes = true) => ({ kind: 'read' as const, refreshes, records });
  const cases: [string, string, Partial<TokenFacts>, string][] = [
    ['the file wins over OAuth', 'locF', { file, oauth: oauth([record(loc('locF'))]) }, 'file'],
    ['its own OAuth record', 'locA', { oauth: oauth([record(loc('locA'))]) }, 'oauth'],
    ['OAuth wins over GHL_TOKEN', 'locA', { fallback: true, oauth: oauth([record(loc('locA'))]) }, 'oauth'],
    [
      'a revoked record pauses it (GHL_TOKEN does not stand in)',
      'locA',
      { fallback: true, oauth: oauth([record(loc('locA'), { revoked: 'uninstalled' })]) },
      'paused',
    ],
    ['no refresh token and an expired access token', 'locA', { oauth: oauth([record(loc('locA'), { hasRefreshToken: false, expiresAt: NOW - 1 })]) }, 'paused'],
    [
      'through its agency',
      'locA',
      { oauth: oauth([record(agency('ag')), record(loc('locA'), { source: 'from-company', companyId: 'ag', scopes: undefined })]) },
      'oauth',
    ],
    ['its agency gone', 'locA', { oauth: oauth([record(loc('locA'), { source: 'from-company', companyId: 'ag' })]) }, 'paused'],
    ['no record, an agency may cover it', 'locB', { oauth: oauth([record(agency('ag'))]) }, 'agency-maybe'],
    ['GHL_TOKEN', 'locB', { fallback: true }, 'env'],
    ['OAuth records unused without the app credentials here', 'locA', { fallback: true, oauth: oauth([record(loc('locA'))], false) }, 'env'],
    ['nothing', 'locB', { file, oauth: oauth([record(loc('locA'))]) }, 'none'],
  ];
  it.each(cases)('%s', (_name, id, over, kind) => {
    expect(tokenSource(id, tokens(over), NOW).kind).toBe(kind);
  });
});

describe('a token per known location', () => {
  it('blocks on locations without one, naming the first ten', () => {
    const ids = Array.from({ length: 13 }, (_, i) => `loc${String(i).padStart(2, '0')}`);
    const file = { kind: 'read' as const, path: 't.json', locations: new Set(['loc00']) };
    const f = find(tokenFindings(tokens({ known: known(ids), file }), NOW), 'tokens.locations');
    expect(f?.status).toBe('blocker');
    expect(f?.detail).toMatch(/^12 of 13 known locations have no token on this host: loc01, .*loc10 and 2 more/);
  });

  it('is ok when GHL_TOKEN covers every location', () => {
    const f = find(tokenFindings(tokens({ known: known(['a', 'b']), fallback: true }), NOW), 'tokens.locations');
    expect(f).toMatchObject({ status: 'ok', detail: expect.stringMatching(/every one of 2 known locations.*2 from GHL_TOKEN/) as unknown });
  });

  it('warns when no source is set and no location is known yet; ok once a source is', () => {
    expect(find(tokenFindings(tokens(), NOW), 'tokens.locations')?.status).toBe('warning');
    expect(find(tokenFindings(tokens({ fallback: true }), NOW), 'tokens.locations')?.status).toBe('ok');
  });

  it('blocks on a tokens file the worker would refuse', () => {
    const f = find(tokenFindings(tokens({ file: { kind: 'bad', path: 'x', why: 'GHL_TOKENS_FILE x is not valid JSON' } }), NOW), 'tokens.file');
    expect(f?.status).toBe('blocker');
  });

  it('blocks on locations whose OAuth authorisation is gone, warns on those left to an agency', () => {
    const oauth = { kind: 'read' as const, refreshes: true, records: [record(loc('gone'), { revoked: 'uninstalled' }), record(agency('ag'))] };
    const findings = tokenFindings(tokens({ known: known(['gone', 'maybe']), oauth }), NOW);
    expect(find(findings, 'tokens.oauth-revoked')).toMatchObject({ status: 'blocker', detail: expect.stringMatching(/gone \(uninstalled\)/) as unknown });
    expect(find(findings, 'tokens.agency')).toMatchObject({ status: 'warning', detail: expect.stringMatching(/maybe$/) as unknown });
  });

  it('skips what needs Redis when it is unreachable', () => {
    expect(tokenFindings(tokens({ known: undefined }), NOW)).toEqual([]);
  });

  it('warns when the registry cannot be read', () => {
    expect(find(tokenFindings(tokens({ known: { known: false, why: 'NOPERM' } }), NOW), 'tokens.locations')?.status).toBe('warning');
  });
});

describe('OAuth scopes', () => {
  const without = (...missing: string[]) => ALL_SCOPES.filter((s) => !missing.includes(s));
  const run = (records: OAuthRecordInfo[], over: Partial<TokenFacts> = {}) =>
    oauthFindings(tokens({ oauth: { kind: 'read', refreshes: true, records }, ...over }), NOW);
  const cases: [string, OAuthRecordInfo[], Partial<TokenFacts>, string, Severity | undefined][] = [
    ['all there', [record(loc('a'))], {}, 'oauth.scopes', 'ok'],
    ['no message.write', [record(loc('a'), { scopes: without('conversations/message.write') })], {}, 'oauth.scope.conversations/message.write', 'blocker'],
    [
      'no message.readonly, reconcile on',
      [record(loc('a'), { scopes: without('conversations/message.readonly') })],
      {},
      'oauth.scope.conversations/message.readonly',
      'warning',
    ],
    [
      'no message.readonly, reconcile off',
      [record(loc('a'), { scopes: without('conversations/message.readonly') })],
      { reconcile: false },
      'oauth.scope.conversations/message.readonly',
      undefined,
    ],
    ['no contacts.write', [record(loc('a'), { scopes: without('contacts.write') })], {}, 'oauth.scope.contacts.write', 'warning'],
    ['a location needs no oauth.write', [record(loc('a'), { scopes: without('oauth.write') })], {}, 'oauth.scope.oauth.write', undefined],
    ['an agency needs oauth.write', [record(agency('ag'), { scopes: without('oauth.write') })], {}, 'oauth.scope.oauth.write', 'blocker'],
    [
      "a location token from an agency has the agency's scopes",
      [
        record(agency('ag'), { scopes: without('conversations/message.write', 'oauth.write') }),
        record(loc('a'), { source: 'from-company', companyId: 'ag', scopes: undefined }),
      ],
      {},
      'oauth.scope.conversations/message.write',
      'blocker',
    ],
    ['not recorded yet (auth import)', [record(loc('a'), { scopes: undefined })], {}, 'oauth.scopes-unknown', 'warning'],
    [
      'a location posting with its GHL_TOKENS_FILE token is not judged by its OAuth record',
      [record(loc('a'), { scopes: without('conversations/message.write') })],
      { file: { kind: 'read', path: 't', locations: new Set(['a']) } },
      'oauth.scope.conversations/message.write',
      undefined,
    ],
    ['a revoked record is not judged', [record(loc('a'), { revoked: 'gone', scopes: [] })], {}, 'oauth.scope.conversations/message.write', undefined],
  ];
  it.each(cases)('%s', (_name, records, over, check, status) => {
    const f = find(run(records, over), check);
    expect(f?.status).toBe(status);
    if (status === 'blocker' || status === 'warning') expect(f?.fix).toBeDefined();
  });

  it('warns when the app credentials are missing on this host, and on failing refreshes', () => {
    const records = [record(loc('a'), { retryAt: NOW + 5_000, failures: 2, lastError: 'HighLevel answered 503' })];
    const findings = oauthFindings(tokens({ oauth: { kind: 'read', refreshes: false, records } }), NOW);
    expect(find(findings, 'oauth.app')?.status).toBe('warning');
    expect(find(findings, 'oauth.refresh')?.detail).toMatch(/a \(2x: HighLevel answered 503\)/);
  });

  it('blocks on a GHL_TOKEN_KEY that is not a key', () => {
    expect(oauthFindings(tokens({ oauth: { kind: 'bad-key', why: 'GHL_TOKEN_KEY is not 32 bytes in base64' } }), NOW)[0]?.status).toBe('blocker');
  });
});

describe('the whole', () => {
  it('exits 0 on a healthy deployment, with warnings', () => {
    const findings = diagnose(facts({ redis: { masters: [node({ memory: known({ maxmemory: 0, used: MB }) })] } }));
    expect(findings.every((x) => x.status !== 'blocker')).toBe(true);
    expect(exitCodeOf(findings)).toBe(0);
    expect(summarize(findings)).toMatchObject({ warning: 1, blocker: 0, exitCode: 0 });
  });

  it('exits 1 on any blocker', () => {
    expect(exitCodeOf(diagnose(facts({ redis: { masters: [node({ maxmemoryPolicy: known('allkeys-lru') })] } })))).toBe(1);
  });

  it('an unreachable Redis is one blocker; what needs Redis is not judged', () => {
    const findings = diagnose({
      redis: { reachable: false, where: 'Redis at redis://x:1', why: 'cannot reach Redis at redis://x:1 (ECONNREFUSED)', setting: 'REDIS_URL' },
      tokens: tokens({ known: undefined, fallback: true }),
      api: { asked: false },
      now: NOW,
    });
    expect(findings).toEqual([
      {
        check: 'redis.reachable',
        status: 'blocker',
        detail: expect.stringMatching(/ECONNREFUSED/) as unknown,
        fix: expect.stringMatching(/REDIS_URL/) as unknown,
      },
    ]);
    expect(exitCodeOf(findings)).toBe(1);
  });

  it('renders areas, marks and fixes', () => {
    const text = renderFindings(diagnose(facts({ redis: { masters: [node({ aofEnabled: known(false) })] } })), 'doctor');
    expect(text).toMatch(/^doctor\n\nRedis\n {2}✓ reachable/);
    expect(text).toMatch(/✗ persistence +nothing on disk/);
    expect(text).toMatch(/\n +fix: run CONFIG SET appendonly yes/);
    expect(text).toMatch(/\nClocks\n {2}✓ redis/);
    expect(text).toMatch(/\n1 blocker, 0 warnings, \d+ ok: fix the blockers/);
  });
});

describe('GHL_TOKENS_FILE, read as the worker reads it', () => {
  const tempDir = useTempDirs();
  const dir = tempDir('ghl-doctor-');
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('keeps location ids only, never a token', () => {
    const f = tokensFileFacts(write('ok.json', JSON.stringify({ locA: 'pit-secret-1', locB: 'pit-secret-2' })));
    expect(f.kind === 'read' && [...f.locations]).toEqual(['locA', 'locB']);
    expect(JSON.stringify({ ...f, locations: f.kind === 'read' ? [...f.locations] : [] })).not.toMatch(/secret/);
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON (its text never quoted)', '{"locA": "pit-secret-1",', /is not valid JSON: /],
    ['not a map of tokens', JSON.stringify({ locA: 42 }), /must be a JSON object/],
    ['a bad location id', JSON.stringify({ 'loc A': 'pit-secret-1' }), /must be a JSON object/],
  ];
  it.each(bad)('%s', (name, text, why) => {
    const f = tokensFileFacts(write(`${name.length}.json`, text));
    expect(f.kind).toBe('bad');
    expect(f.kind === 'bad' && f.why).toMatch(why);
    expect(JSON.stringify(f)).not.toMatch(/secret/);
  });

  it('an unreadable file is named with its reason', () => {
    expect(tokensFileFacts(join(dir, 'missing.json'))).toMatchObject({ kind: 'bad', why: expect.stringMatching(/cannot be read \(ENOENT\)/) as unknown });
  });
});

import { describe, expect, it } from 'vitest';
import { contactIdentities, uploadRefusal } from './contact.ts';

describe('contact identities', () => {
  it.each([
    ['phone', { phone: '+14155550100' }, ['p:+14155550100']],
    ['email', { email: 'a@b.co' }, ['e:a@b.co']],
    ['both, phone first', { email: 'a@b.co', phone: '+14155550100', name: 'Ann' }, ['p:+14155550100', 'e:a@b.co']],
  ])('%s', (_name, contact, expected) => {
    expect(contactIdentities(contact)).toEqual(expected);
  });
});

describe("HighLevel's upload rules", () => {
  it.each([
    ['a small PNG', 'a.png', 10, undefined],
    ['upper-case extension', 'A.PDF', 10, undefined],
    ['an executable', 'a.exe', 10, 'takes only'],
    ['no extension', 'README', 10, 'takes only'],
    ['5 MB exactly', 'a.mp3', 5 * 1024 * 1024, undefined],
    ['one byte over 5 MB', 'a.mp3', 5 * 1024 * 1024 + 1, 'at most 5242880 bytes'],
  ])('%s', (_name, name, bytes, expected) => {
    const r = uploadRefusal(name, bytes);
    if (expected === undefined) expect(r).toBeUndefined();
    else expect(r).toContain(expected);
  });
});

/**
 * Normalisers for single values: lenient about what they take, strict about what they return.
 * Each returns the normalised value or a sentence a person can act on; none throws.
 */
import { isSupportedCountry, parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';
import { z } from 'zod';

export type Normalised<T> = { ok: true; value: T } | { ok: false; message: string };

const ok = <T>(value: T): Normalised<T> => ({ ok: true, value });
const fail = (message: string): Normalised<never> => ({ ok: false, message });

export function isCountryCode(region: string): region is CountryCode {
  return isSupportedCountry(region);
}

/** A phone number to E.164, reading numbers without a country code in `defaultRegion`. */
export function normalizePhone(input: string, defaultRegion: CountryCode): Normalised<string> {
  const phone = parsePhoneNumberFromString(input, { defaultCountry: defaultRegion });
  if (phone === undefined) return fail(`"${clip(input)}" is not a phone number`);
  if (!phone.isValid()) {
    return fail(
      `"${clip(input)}" is not a valid phone number` +
        (input.trim().startsWith('+') ? '' : ` in region ${defaultRegion} (write it with its country code, e.g. +44...)`),
    );
  }
  return ok(phone.number);
}

const emailSchema = z.email();

/** An email address, trimmed and lower-cased. */
export function normalizeEmail(input: string): Normalised<string> {
  const value = input.trim().toLowerCase();
  if (!emailSchema.safeParse(value).success) return fail(`"${clip(input)}" is not an email address`);
  return ok(value);
}

/** An absolute http(s) URL that HighLevel can fetch; returned as given (signed URLs must not be rewritten). */
export function normalizeUrl(input: string): Normalised<string> {
  const value = input.trim();
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(`"${clip(input)}" is not an absolute URL (HighLevel must be able to fetch it)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return fail(`"${clip(input)}" must be an http or https URL, not ${url.protocol.slice(0, -1)}`);
  }
  if (url.hostname === '') return fail(`"${clip(input)}" has no host`);
  return ok(value);
}

/** Epoch values below this are seconds, at or above it milliseconds (1e11 s is the year 5138). */
const EPOCH_SECONDS_BELOW = 1e11;
const MAX_EPOCH_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;

/**
 * A moment to ISO-8601 UTC with milliseconds. Takes ISO date-times with `Z` or an offset,
 * and epoch seconds or milliseconds (numbers or digit strings). A date-time without a zone is
 * refused: guessing one would silently misplace every message of an import by hours.
 */
export function normalizeDate(input: unknown): Normalised<string> {
  if (typeof input === 'number') return fromEpoch(input);
  if (typeof input !== 'string') return fail('must be an ISO-8601 date-time or epoch seconds/milliseconds');
  const text = input.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return fromEpoch(Number(text));
  const m = ISO_DATE_TIME.exec(text);
  if (m === null) {
    return fail(`"${clip(input)}" is not an ISO-8601 date-time (e.g. 2024-05-01T12:00:00Z) or epoch seconds/milliseconds`);
  }
  const [, y, mo, d, h, mi, s, frac, zulu, sign, oh, om] = m;
  if (zulu === undefined && sign === undefined) {
    return fail(`"${clip(input)}" has no time zone: add Z or an offset such as +02:00`);
  }
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = s === undefined ? 0 : Number(s);
  const millis = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  const offsetMinutes = sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om));
  const calendar = new Date(Date.UTC(year, month - 1, day));
  if (
    month < 1 ||
    month > 12 ||
    calendar.getUTCDate() !== day ||
    calendar.getUTCMonth() !== month - 1 ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    Math.abs(offsetMinutes) > 18 * 60
  ) {
    return fail(`"${clip(input)}" is not a real date and time`);
  }
  const epoch = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000;
  return fromEpoch(epoch, true);
}

function fromEpoch(value: number, isMillis = false): Normalised<string> {
  if (!Number.isFinite(value) || value < 0) return fail('must be a date-time after 1970 (epoch seconds or milliseconds)');
  const ms = isMillis || value >= EPOCH_SECONDS_BELOW ? value : value * 1000;
  if (ms > MAX_EPOCH_MS) return fail('is too far in the future');
  return ok(new Date(Math.round(ms)).toISOString());
}

/**
 * A list given as an array, as JSON text of an array (`["a","b"]`), or as `;`-separated text
 * (how CSV files carry lists). Empty items are dropped.
 */
export function parseList(input: unknown): Normalised<string[]> {
  let items: unknown[];
  if (Array.isArray(input)) items = input;
  else if (typeof input === 'string') {
    const text = input.trim();
    if (text.startsWith('[')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return fail('looks like a JSON array but is not valid JSON');
      }
      if (!Array.isArray(parsed)) return fail('must be a list');
      items = parsed;
    } else items = text.split(';');
  } else return fail('must be a list (an array, or text separated by ";")');
  const out: string[] = [];
  for (const [i, item] of items.entries()) {
    if (typeof item !== 'string') return fail(`item ${i + 1} must be text`);
    const value = item.trim();
    if (value !== '') out.push(value);
  }
  return ok(out);
}

/** Keeps error messages short when the input is a megabyte of garbage. */
export function clip(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

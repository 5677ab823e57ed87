export * from './api-answers.ts';
export * from './body.ts';
export * from './idempotency-key.ts';
export * from './issues.ts';
export * from './job-data.ts';
export * from './limits.ts';
export { isCountryCode, normalizeDate, normalizeEmail, normalizePhone, normalizeUrl, parseList } from './normalize.ts';
export * from './record.ts';
export * from './strict.ts';

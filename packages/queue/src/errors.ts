/**
 * The product's one error type: a small closed set of codes, whether the failure is permanent
 * for the message, and the cause. Errors crossing a process boundary (BullMQ stores them as text)
 * lose their prototype, so they are recognised by `name` and `code` as well as `instanceof`.
 */
export const ERROR_CODES = [
  /** The job's data no longer parses (permanent). */
  'INVALID_JOB',
  /** HighLevel refused the message (400, 403, 404, 422...): permanent. */
  'API_REJECTED',
  /** A transient failure: 5xx, timeout, reset, DNS. */
  'API_TRANSIENT',
  /** A 2xx without a messageId: not a delivery. */
  'API_SUSPECT',
  /** No token is configured for the location. */
  'NO_TOKEN',
  /** A bad setting or file. */
  'CONFIG',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class IngestError extends Error {
  override name = 'IngestError';
  readonly code: ErrorCode;
  readonly permanent: boolean;

  constructor(code: ErrorCode, message: string, options: { permanent?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.permanent = options.permanent ?? false;
  }
}

export function isIngestError(error: unknown): error is IngestError {
  return error instanceof IngestError || (error instanceof Error && error.name === 'IngestError' && 'code' in error);
}

/** Every caught value becomes an Error exactly here. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  if (typeof value === 'string') return new Error(value);
  try {
    return new Error(`non-error thrown: ${JSON.stringify(value)}`);
  } catch {
    return new Error('non-error thrown');
  }
}

/** A bad setting or settings file: the process says which and stops. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
